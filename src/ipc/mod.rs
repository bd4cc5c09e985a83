//! The bridge between `cellui` (or any client) and the control plane:
//! length-prefixed CBOR frames carrying the typed messages of [`proto`], over
//! stdio (a child process, or ssh to another host) or a unix socket.
//!
//! - [`proto`]: the messages, shared by both sides.
//! - [`frame`]: framing, size limit, resynchronisation after garbage.
//! - [`server`]: sessions over a [`server::Backend`]; stdio and socket transports.
//! - [`client`]: connecting, the handshake, blocking and event-loop reads.
//! - [`logtail`]: following a service log for the `LogTail` request.
//! - [`ssh`]: the ssh command line to another host, for the bridge and for
//!   `cellmgr -H` / `cellctl -H`.
//!
//! The protocol is described for operators in cellmgr(8), IPC PROTOCOL.

pub mod client;
pub mod frame;
pub mod logtail;
pub mod proto;
pub mod server;
pub mod ssh;
