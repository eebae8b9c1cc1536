//! ood-core (see docs/architecture.md)
