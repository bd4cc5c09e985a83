//! The file layer (ground floor).
//!
//! * `host`: files only host root controls (configuration, state, the run
//!   directory): atomic writes, optional reads, directory listings;
//! * `cbor`: the encoding of state files and messages, with readable errors;
//! * `mountinfo`: the host's mount table.
pub mod cbor;
pub mod host;
pub mod mountinfo;
