/**
 * Live handoff: a running service gives its memory regions, listening sockets and open connections
 * to its next version, which takes over after a pause of about a millisecond. See docs/handoff.md.
 */
export { Generation } from './generation.ts'
export { join } from './join.ts'
export { exportServer, adoptServer, exportSocket, adoptSocket, Handle, type HandleKind } from './handles.ts'
export { status, watch } from './client.ts'
export type { Env } from './env.ts'
export type {
  HandedOffInfo, HandoffRecord, HandoffState, Inherited, JoinOptions, LayoutSpec, Origin, RegionReport, StatusReport, SuccessorInfo, WatchEvent,
} from './types.ts'
export { prime, rehearsal, type Rehearsal } from './prime.ts'
