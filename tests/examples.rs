//! The example stacks in `examples/`, each run end to end by its own `run.sh`
//! (apply, checks, cleanup) against this build's binary.

mod support;

use std::path::Path;
use std::process::Command;

fn run_example(name: &str) {
    if !support::root_or_skip(&format!("example {name}")) {
        return;
    }
    // The scripts call busybox by this path.
    if !Path::new("/bin/busybox").exists() {
        eprintln!("example {name}: skipped: needs /bin/busybox (apt-get install busybox-static)");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
        .join("run.sh");
    let out = Command::new("sh")
        .arg(&script)
        .env("CELLS", support::BIN)
        .env_remove("KEEP")
        .output()
        .expect("running sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "examples/{name}/run.sh failed:\n{text}"
    );
    assert!(text.contains(&format!("PASS: {name}")), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
}

#[test]
fn quickstart() {
    run_example("quickstart");
}

#[test]
fn blue_green() {
    run_example("blue-green");
}

#[test]
fn stateful() {
    run_example("stateful");
}
