//! Where an [`Analysis`](crate::analysis::Analysis) goes: a terminal table, an
//! annotated picture. JSON comes straight from `Analysis::to_json`.

pub mod annotate;
pub mod terminal;
