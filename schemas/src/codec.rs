//! Events to and from Avro in the Confluent wire format (magic byte, schema id), through
//! any Confluent-API schema registry, with subjects named `<topic>-<record full name>`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use apache_avro::types::Value;
use apache_avro::Schema;
use chrono::{DateTime, Utc};
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tidemark_events::account::AccountEvent;
use tidemark_events::activity::ActivityEvent;
use tidemark_events::contact::ContactEvent;
use tidemark_events::lead::LeadEvent;
use tidemark_events::delegation::DelegationEvent;
use tidemark_events::engagement::EngagementEvent;
use tidemark_events::opportunity::OpportunityEvent;
use tidemark_events::{DomainEvent, Envelope, EventRecord};
use tidemark_privacy::{KeyError, KeyStore};

use crate::catalog;

pub const FENCE_MARKER: &str = "tidemark.FenceMarker";

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("schema registry: {0}")]
    Registry(#[from] SRCError),
    #[error("avro: {0}")]
    Avro(#[from] Box<apache_avro::Error>),
    #[error("record {0} is not a Tidemark event")]
    UnknownRecord(String),
    #[error("the record has no value")]
    Empty,
    #[error("personal data: {0}")]
    Keys(#[from] KeyError),
    #[error("{0} carries personal data, and this codec has no key store to seal it with")]
    NoKeyStore(String),
}

impl CodecError {
    /// A registry that does not answer is worth retrying; bad bytes never get better.
    pub fn is_retryable(&self) -> bool {
        match self {
            CodecError::Registry(e) => e.retriable,
            CodecError::Keys(KeyError::Store(_)) => true,
            _ => false,
        }
    }
}

impl From<apache_avro::Error> for CodecError {
    fn from(e: apache_avro::Error) -> Self {
        CodecError::Avro(Box::new(e))
    }
}

/// Appended by a new owner of a partition before it serves (see `tidemark_events::fold`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FenceMarker {
    pub writer_epoch: i64,
    pub writer_id: String,
    pub fenced_at: DateTime<Utc>,
}

/// What one record of an event topic holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Event(EventRecord),
    Fence(FenceMarker),
}

/// An event record as Avro holds it: the envelope and the event's data. Public so that the
/// codec's benchmark measures this very shape.
#[derive(Serialize)]
pub struct WireOut<'a, D> {
    pub envelope: &'a Envelope,
    pub data: &'a D,
}

#[derive(Deserialize)]
pub struct WireIn<D> {
    pub envelope: Envelope,
    pub data: D,
}

pub struct EventCodec {
    encoder: AvroEncoder,
    decoder: AvroDecoder,
    /// The latest schema of each record, to read older data through Avro schema resolution.
    readers: HashMap<&'static str, Schema>,
    /// Seals personal values on the way out and opens them on the way in; without it,
    /// personal data is refused on the way out and read still sealed.
    keys: Option<Arc<dyn KeyStore>>,
}

impl EventCodec {
    pub fn new(registry_url: &str) -> Result<EventCodec, CodecError> {
        EventCodec::with_token(registry_url, None)
    }

    /// `token`: a bearer token, for registries that want one before a schema is registered.
    pub fn with_token(registry_url: &str, token: Option<&str>) -> Result<EventCodec, CodecError> {
        // Uuids and other types serialize as text only when serde is told the format is
        // human-readable; the schemas say "string", so this must hold before any encoding.
        if !apache_avro::util::set_serde_human_readable(true) {
            panic!("apache_avro serde was set to non-human-readable elsewhere; Tidemark schemas need text");
        }
        let settings = || {
            let mut builder = SrSettings::new_builder(registry_url.to_string());
            builder.set_timeout(Duration::from_secs(5));
            if let Some(token) = token {
                builder.set_token_authorization(token);
            }
            builder.build()
        };
        let readers = catalog::LATEST
            .iter()
            .map(|(name, _, json)| Ok((*name, Schema::parse_str(json)?)))
            .collect::<Result<_, apache_avro::Error>>()?;
        Ok(EventCodec { encoder: AvroEncoder::new(settings()?), decoder: AvroDecoder::new(settings()?), readers, keys: None })
    }

    pub fn with_keys(self, keys: Arc<dyn KeyStore>) -> EventCodec {
        EventCodec { keys: Some(keys), ..self }
    }

    /// Registers (or finds) the schema of every record on its topics, so that a registry
    /// that refuses a schema stops the writer at start-up rather than at its first command.
    pub async fn register_all(&self, topics: &tidemark_events::Topics) -> Result<(), CodecError> {
        for topic in topics.all() {
            for (name, _, _) in catalog::LATEST {
                let belongs = *name == FENCE_MARKER || topics.for_aggregate(aggregate_of(name)) == Some(topic);
                if belongs {
                    let strategy = strategy(topic, name);
                    let subject = strategy.get_subject()?;
                    self.encoder.get_schema_and_id(&subject, strategy).await?;
                }
            }
        }
        Ok(())
    }

    pub async fn encode_event(&self, topic: &str, record: &EventRecord) -> Result<Vec<u8>, CodecError> {
        let sealed = match &self.keys {
            Some(keys) => tidemark_privacy::seal(keys.as_ref(), record).await?,
            None if tidemark_events::personal_fields(record.event.event_type()).is_empty() => None,
            None => return Err(CodecError::NoKeyStore(record.event.event_type().to_string())),
        };
        let record = sealed.as_ref().unwrap_or(record);
        let env = &record.envelope;
        match &record.event {
            DomainEvent::Account(AccountEvent::Opened(d)) => self.encode(topic, "tidemark.account.AccountOpened", env, d).await,
            // An opportunity event serializes as its payload; its type names the record.
            DomainEvent::Opportunity(e) => self.encode(topic, &format!("tidemark.opportunity.{}", e.event_type()), env, e).await,
            DomainEvent::Delegation(e) => self.encode(topic, &format!("tidemark.delegation.{}", e.event_type()), env, e).await,
            DomainEvent::Activity(e) => self.encode(topic, &format!("tidemark.activity.{}", e.event_type()), env, e).await,
            DomainEvent::Contact(e) => self.encode(topic, &format!("tidemark.contact.{}", e.event_type()), env, e).await,
            DomainEvent::Lead(e) => self.encode(topic, &format!("tidemark.lead.{}", e.event_type()), env, e).await,
            DomainEvent::Engagement(e) => self.encode(topic, &format!("tidemark.engagement.{}", e.event_type()), env, e).await,
        }
    }

    pub async fn encode_fence(&self, topic: &str, marker: &FenceMarker) -> Result<Vec<u8>, CodecError> {
        Ok(self.encoder.encode_struct(marker, &strategy(topic, FENCE_MARKER)).await?)
    }

    async fn encode<D: Serialize>(&self, topic: &str, name: &str, envelope: &Envelope, data: &D) -> Result<Vec<u8>, CodecError> {
        Ok(self.encoder.encode_struct(WireOut { envelope, data }, &strategy(topic, name)).await?)
    }

    pub async fn decode(&self, bytes: Option<&[u8]>) -> Result<Decoded, CodecError> {
        let decoded = self.decoder.decode(bytes).await?;
        let name = decoded.name.ok_or(CodecError::Empty)?.fullname(None);
        let reader = self.readers.get(name.as_str()).ok_or_else(|| CodecError::UnknownRecord(name.clone()))?;
        let value = decoded.value.resolve(reader)?;
        use OpportunityEvent as O;
        let mut decoded = match name.as_str() {
            FENCE_MARKER => Decoded::Fence(apache_avro::from_value(&value)?),
            "tidemark.account.AccountOpened" => event(&value, |d| DomainEvent::Account(AccountEvent::Opened(d)))?,
            "tidemark.opportunity.OpportunityCreated" => event(&value, |d| DomainEvent::Opportunity(O::Created(d)))?,
            "tidemark.opportunity.OpportunityAmountChanged" => event(&value, |d| DomainEvent::Opportunity(O::AmountChanged(d)))?,
            "tidemark.opportunity.OpportunityCloseDateChanged" => {
                event(&value, |d| DomainEvent::Opportunity(O::CloseDateChanged(d)))?
            }
            "tidemark.opportunity.OpportunityStageMoved" => event(&value, |d| DomainEvent::Opportunity(O::StageMoved(d)))?,
            "tidemark.opportunity.OpportunityClosed" => event(&value, |d| DomainEvent::Opportunity(O::Closed(d)))?,
            "tidemark.opportunity.OpportunityPreferenceChanged" => event(&value, |d| DomainEvent::Opportunity(O::PreferenceChanged(d)))?,
            "tidemark.opportunity.OfflineReviewOpened" => event(&value, |d| DomainEvent::Opportunity(O::ReviewOpened(d)))?,
            "tidemark.opportunity.OfflineReviewResolved" => event(&value, |d| DomainEvent::Opportunity(O::ReviewResolved(d)))?,
            "tidemark.opportunity.OpportunityShared" => event(&value, |d| DomainEvent::Opportunity(O::Shared(d)))?,
            "tidemark.opportunity.OpportunityUnshared" => event(&value, |d| DomainEvent::Opportunity(O::Unshared(d)))?,
            "tidemark.opportunity.QuoteDrafted" => event(&value, |d| DomainEvent::Opportunity(O::QuoteDrafted(d)))?,
            "tidemark.opportunity.QuoteRevised" => event(&value, |d| DomainEvent::Opportunity(O::QuoteRevised(d)))?,
            "tidemark.opportunity.QuoteSubmitted" => event(&value, |d| DomainEvent::Opportunity(O::QuoteSubmitted(d)))?,
            "tidemark.opportunity.QuoteApprovalDecided" => event(&value, |d| DomainEvent::Opportunity(O::QuoteApprovalDecided(d)))?,
            "tidemark.opportunity.QuoteRecalled" => event(&value, |d| DomainEvent::Opportunity(O::QuoteRecalled(d)))?,
            "tidemark.opportunity.QuoteAccepted" => event(&value, |d| DomainEvent::Opportunity(O::QuoteAccepted(d)))?,
            "tidemark.opportunity.QuoteDeclined" => event(&value, |d| DomainEvent::Opportunity(O::QuoteDeclined(d)))?,
            "tidemark.delegation.DelegationGranted" => event(&value, |d| DomainEvent::Delegation(DelegationEvent::Granted(d)))?,
            "tidemark.delegation.DelegationRevoked" => event(&value, |d| DomainEvent::Delegation(DelegationEvent::Revoked(d)))?,
            "tidemark.activity.ActivityLogged" => event(&value, |d| DomainEvent::Activity(ActivityEvent::Logged(d)))?,
            "tidemark.activity.TaskCompleted" => event(&value, |d| DomainEvent::Activity(ActivityEvent::TaskCompleted(d)))?,
            "tidemark.activity.TaskReopened" => event(&value, |d| DomainEvent::Activity(ActivityEvent::TaskReopened(d)))?,
            "tidemark.contact.ContactCreated" => event(&value, |d| DomainEvent::Contact(ContactEvent::Created(d)))?,
            "tidemark.contact.ContactUpdated" => event(&value, |d| DomainEvent::Contact(ContactEvent::Updated(d)))?,
            "tidemark.contact.ContactLinked" => event(&value, |d| DomainEvent::Contact(ContactEvent::Linked(d)))?,
            "tidemark.contact.ContactErased" => event(&value, |d| DomainEvent::Contact(ContactEvent::Erased(d)))?,
            "tidemark.lead.LeadCaptured" => event(&value, |d| DomainEvent::Lead(LeadEvent::Captured(d)))?,
            "tidemark.lead.LeadAssigned" => event(&value, |d| DomainEvent::Lead(LeadEvent::Assigned(d)))?,
            "tidemark.lead.LeadQualified" => event(&value, |d| DomainEvent::Lead(LeadEvent::Qualified(d)))?,
            "tidemark.lead.LeadDisqualified" => event(&value, |d| DomainEvent::Lead(LeadEvent::Disqualified(d)))?,
            "tidemark.lead.LeadConverted" => event(&value, |d| DomainEvent::Lead(LeadEvent::Converted(d)))?,
            "tidemark.lead.LeadErased" => event(&value, |d| DomainEvent::Lead(LeadEvent::Erased(d)))?,
            "tidemark.engagement.EmailOpened" => event(&value, |d| DomainEvent::Engagement(EngagementEvent::EmailOpened(d)))?,
            "tidemark.engagement.EngagementDetected" => event(&value, |d| DomainEvent::Engagement(EngagementEvent::Detected(d)))?,
            _ => return Err(CodecError::UnknownRecord(name)),
        };
        if let (Some(keys), Decoded::Event(record)) = (&self.keys, &mut decoded) {
            tidemark_privacy::open(keys.as_ref(), record).await?;
        }
        Ok(decoded)
    }
}

fn event<D: DeserializeOwned>(value: &Value, wrap: impl FnOnce(D) -> DomainEvent) -> Result<Decoded, CodecError> {
    let wire: WireIn<D> = apache_avro::from_value(value)?;
    Ok(Decoded::Event(EventRecord { envelope: wire.envelope, event: wrap(wire.data) }))
}

/// `tidemark.opportunity.OpportunityCreated` belongs to the `opportunity` aggregate.
fn aggregate_of(full_name: &str) -> &str {
    full_name.split('.').nth(1).unwrap_or_default()
}

fn strategy(topic: &str, full_name: &str) -> SubjectNameStrategy {
    let json = catalog::LATEST
        .iter()
        .find(|(name, _, _)| *name == full_name)
        .map(|(_, _, json)| *json)
        .unwrap_or_else(|| panic!("no schema for {full_name} in schemas/avro"));
    let supplied = SuppliedSchema::new(Some(full_name.to_string()), SchemaType::Avro, json.to_string());
    SubjectNameStrategy::TopicRecordNameStrategyWithSchema(topic.to_string(), supplied)
}
