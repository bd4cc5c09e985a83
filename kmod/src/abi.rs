//! Userland ABI of secmodel_cell.
