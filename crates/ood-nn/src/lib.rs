//! ood-nn (see docs/architecture.md)
