//! Avro schemas of every event (`avro/`), the codec that writes and reads them in the
//! Confluent wire format, and Tidemark's own Confluent-compatible schema registry.

pub mod codec;
pub mod compatibility;
pub mod registry;

pub mod catalog {
    include!(concat!(env!("OUT_DIR"), "/catalog.rs"));
}

pub use codec::{Decoded, EventCodec, FenceMarker};
