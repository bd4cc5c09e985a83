//! Entry points for fuzzing the parsers of untrusted or hand-written input,
//! shared by the cargo-fuzz targets (`fuzz/`, nightly) and the stable loop in
//! `tests/fuzz.rs` (`make test`). Each takes arbitrary bytes and may return
//! an error, but must never panic, hang or allocate without bound.
//!
//! Top floor (like `cli`): it reaches into every parser.

use std::path::Path;

/// `.cell`, `.volume` and `cellmgr.conf` text: the rc.conf-style syntax and
/// every key's validation.
pub fn manifest(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let cfg = crate::config::Config {
        allow_host_mounts: true,
        ..crate::config::Config::default()
    };
    let _ = crate::engine::manifest::CellManifest::parse(
        Path::new("/etc/cellmgr/web.cell"),
        &text,
        "web",
        &cfg,
    );
    let _ = crate::engine::manifest::VolumeManifest::parse(
        Path::new("/etc/cellmgr/data.volume"),
        &text,
        "data",
    );
    let _ = crate::config::Config::parse(Path::new("/etc/cellmgr.conf"), &text);
}

/// `.apply` plans.
pub fn apply_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::engine::applyfile::parse(Path::new("/etc/cellmgr/web.apply"), &text);
}

/// CBOR state files and IPC messages: the cell table, supervisor status,
/// backup sidecars, requests and responses.
pub fn cbor_state(data: &[u8]) {
    use crate::fs::cbor::decode;
    #[cfg(target_os = "linux")]
    let _ = decode::<crate::kernel::linux::state::Table>(data);
    let _ = decode::<crate::supervise::SupervisorStatus>(data);
    let _ = decode::<crate::engine::backup::sidecar::Sidecar>(data);
    let _ = decode::<crate::ipc::proto::Request>(data);
    let _ = decode::<crate::ipc::proto::Response>(data);
}

/// The IPC byte stream: frames found, resynchronised after garbage, in
/// whatever pieces the bytes arrive (the first byte picks the piece size).
pub fn ipc_frames(data: &[u8]) {
    let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
    let mut decoder = crate::ipc::frame::FrameDecoder::new();
    for chunk in data.chunks(step) {
        decoder.push(chunk);
        while let Some(frame) = decoder.next_frame() {
            if let Ok(payload) = frame {
                let _ = crate::ipc::proto::decode::<crate::ipc::proto::Request>(&payload);
            }
        }
    }
}

/// Tar headers of an archive (backups are untrusted once on disk).
pub fn tar_headers(data: &[u8]) {
    let mut scan = crate::engine::backup::scan::Scan::new();
    scan.feed(data);
    let _ = scan.finish().unrestorable();
}
