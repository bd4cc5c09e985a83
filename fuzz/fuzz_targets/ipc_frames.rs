#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cells::fuzz::ipc_frames(data));
