/**
 * QEMU live update on pagegift memory: a VM whose RAM is a sealed memfd held by its keeper, moved
 * to a new QEMU process without copying the RAM. See docs/qemu.md. The `pagegift qemu` command is
 * built on these; a program can also be its own keeper through `Vm`.
 */
export { Vm, type VmConfig, type VmStatus, type UpgradeOptions, type UpgradeRecord, type VmHandoffMeta, type PrepareOptions, type PreparedStatus } from './vm.ts'
export { startKeeper, KEEPER_VERSION, type Keeper, type PrepareReply } from './keeper.ts'
export { liveUpdate, type LiveUpdateOptions, type UpgradePhase, type UpgradeReport } from './liveupdate.ts'
export { prepareDestination, checkPrepared, discardPrepared, type PreparedDestination, type PrepareDestinationOptions } from './prepare.ts'
export { launchQemu, attachQemu, qemuArgs, QemuProcess, type LaunchOptions, type ExitStatus } from './process.ts'
export { QmpClient, type QmpEvent, type QmpOptions, type QmpVersion } from './qmp.ts'
export { findQemu, kvmUsable, parseMemorySize, type QemuBinary } from './host.ts'
export { request as controlRequest, type ControlRequest } from './control.ts'
export { defaultDir, vmPaths, type VmPaths } from './paths.ts'
export { QemuError, isQemuError, type QemuErrorCode } from './errors.ts'
