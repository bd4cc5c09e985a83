//! The file layer (ground floor).
//!
//! * `host`: files only host root controls (configuration, state, the run
//!   directory): atomic writes, optional reads, directory listings.
//! * `mountinfo`: the host's mount table.
pub mod host;
pub mod mountinfo;
