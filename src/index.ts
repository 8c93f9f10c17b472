/**
 * pagegift: move memory pages between processes without copying them, and hand a running
 * service's state and sockets to its next version.
 */
export { alloc, isGiftable, release, pageSize, fdOf, trimReceivePool } from './pages.ts'
export { Channel, channelPair, type Peer, type Message } from './channel.ts'
export { listen, connect, GiftServer, type ListenOptions } from './server.ts'
export type { GiftReceipt, GiftOptions } from './gift-send.ts'
export type { Gift, ReceiveOptions } from './gift-receive.ts'
export type { GiftPath, GiftData } from './sources.ts'
export { PagegiftError, SystemError } from './errors.ts'
import { closeFds } from './transport.ts'
export { closeFds }

/** Closes one fd received in a control message. */
export function closeFd (fd: number): void {
  closeFds([fd])
}

/** Live handoff of a running service to its next version: see docs/handoff.md. */
export * as handoff from './handoff/index.ts'
