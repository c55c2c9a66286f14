//! Avro schemas of every event (`avro/`), the codec that writes and reads them in the
//! Confluent wire format, and Tidemark's own Confluent-compatible schema registry.

pub mod codec;
pub mod compatibility;
pub mod registry;

pub mod catalog {
    include!(concat!(env!("OUT_DIR"), "/catalog.rs"));
}

pub use codec::{Decoded, EventCodec, FenceMarker};

#[cfg(test)]
mod tests {
    /// The schemas mark personal fields `"tidemark.personal": true`; the domain names them in
    /// `personal_fields`. Every tool that hides or erases personal data reads the latter.
    #[test]
    fn the_schemas_and_the_domain_agree_on_personal_fields() {
        for (name, _, json) in crate::catalog::LATEST {
            let schema: serde_json::Value = serde_json::from_str(json).unwrap();
            let data = schema["fields"].as_array().unwrap().iter().find(|f| f["name"] == "data");
            let marked: Vec<&str> = data
                .and_then(|d| d["type"]["fields"].as_array())
                .map(|fields| fields.iter().filter(|f| f["tidemark.personal"] == true).map(|f| f["name"].as_str().unwrap()).collect())
                .unwrap_or_default();
            let event_type = name.rsplit('.').next().unwrap();
            assert_eq!(marked, tidemark_events::personal_fields(event_type), "{name}");
        }
    }
}
