//! secmodel_cell: the Cells kernel security model for NetBSD.
#![no_std]

pub mod abi;
