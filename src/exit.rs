//! Exit codes, the error format and argument parsing: the conventions every
//! personality, the engine and the runtime share (ground floor; imports only
//! `output::echo`, which makes messages safe to print).

/// Success.
pub const EXIT_OK: i32 = 0;
/// Any failure, usage errors included.
pub const EXIT_FAILURE: i32 = 1;
/// Reserved for `cellmgr apply --dry-run` finding drift.
pub const EXIT_DRIFT: i32 = 2;

/// Prints an error in the shared format `<personality>: <what failed>: <why>`.
/// The `anyhow` context chain supplies "what failed" (outermost) and "why"
/// (innermost), so callers attach context with `.context("starting cell web")`.
pub fn report_error(personality: &str, err: &anyhow::Error) {
    let parts: Vec<String> = err.chain().map(|e| e.to_string()).collect();
    // A last net: values are cut and escaped where they are quoted, but no
    // message may write control bytes to the terminal or flood it.
    let text = crate::output::echo::message(&parts.join(": "));
    eprintln!("{personality}: {text}");
}

/// Parses argh arguments for a personality. `Err(code)` means the caller should
/// exit with that code (help printed: 0; usage error: 1). A mistyped command or
/// flag is named with the nearest one the command table knows.
pub fn parse_args<T: argh::FromArgs + argh::ArgsInfo>(
    command: &[&str],
    args: &[String],
) -> Result<T, i32> {
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    T::from_args(command, &strs).map_err(|early| match early.status {
        Ok(()) => {
            print!("{}", early.output);
            EXIT_OK
        }
        Err(()) => {
            let personality = command.first().copied().unwrap_or("cells");
            let info = T::get_args_info();
            if let Some(msg) =
                crate::cmdtable::explain_unrecognized(personality, &info, &strs, &early.output)
            {
                eprintln!("{msg}");
                return EXIT_FAILURE;
            }
            eprint!("{}", early.output);
            if !early.output.ends_with('\n') {
                eprintln!();
            }
            EXIT_FAILURE
        }
    })
}

/// Runs a fallible command body and maps the result to an exit code, printing
/// errors in the shared format.
pub fn run(personality: &str, body: impl FnOnce() -> anyhow::Result<i32>) -> i32 {
    finish(personality, body())
}

/// A command's result as its exit code, the error printed in the shared format.
pub fn finish(personality: &str, result: anyhow::Result<i32>) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => {
            report_error(personality, &e);
            EXIT_FAILURE
        }
    }
}
