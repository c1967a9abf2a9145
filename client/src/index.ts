// The public surface of @walera/client: follow a stream (`connect`), an EventSource with headers
// (`WaleraEventSource`), the mirror helpers, and the pieces they are built from for custom loops.
export {
  type BackoffOptions,
  backoffDelayMs,
  parseRetryAfterMs,
  retryDelayMs,
} from "./backoff.js"
export {
  type CloseInfo,
  type ConnectionState,
  type ConnectOptions,
  connect,
  type WaleraConnection,
} from "./connect.js"
export {
  BadFrameError,
  decodeEvent,
  type ErrorReason,
  type WaleraChange,
  type WaleraError,
  type WaleraEvent,
  type WaleraEventMap,
  type WaleraResumed,
  type WaleraShutdown,
  type WaleraTx,
} from "./events.js"
export {
  type AsyncMirrorStore,
  applyTx,
  applyTxAsync,
  type MirrorStore,
  mapStore,
  type Row,
  type WaleraMirror,
} from "./mirror.js"
export type { EventSourceConstructor, EventSourceLike } from "./openNativeStream.js"
export { parseSse, type SseEvent, type SseParser } from "./parseSse.js"
export {
  type WaleraEventSourceInit,
  type WaleraHeaders,
  type WaleraHeadersInit,
  WaleraEventSource,
} from "./WaleraEventSource.js"
