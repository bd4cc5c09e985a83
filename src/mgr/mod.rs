//! `cellmgr`: the declarative control plane.

pub fn main(personality: &str, args: &[String]) -> i32 {
    let _ = args;
    eprintln!("{personality}: not implemented yet");
    crate::cli::EXIT_FAILURE
}
