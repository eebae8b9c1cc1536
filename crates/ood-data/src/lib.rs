//! ood-data (see docs/architecture.md)
