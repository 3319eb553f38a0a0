//! Where an [`Analysis`](crate::analysis::Analysis) goes: a terminal table, an
//! annotated picture, the kiosk screen. JSON comes straight from
//! `Analysis::to_json`, HRI events from [`crate::hri`].

pub mod annotate;
pub mod clip;
pub mod kiosk;
pub mod plot;
pub mod terminal;
