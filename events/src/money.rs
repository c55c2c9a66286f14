//! Money is an exact decimal with an ISO 4217 currency code; never a float.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::Rejection;

/// A three-letter upper-case currency code (ISO 4217 shape; the list itself is not checked,
/// so a new currency needs no release).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Currency {
    type Error = String;
    fn try_from(code: String) -> Result<Self, String> {
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Currency(code))
        } else {
            Err(format!("'{code}' is not a three-letter upper-case ISO 4217 currency code"))
        }
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.0
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// A decimal string ("12000.00") both ways: a JSON number is refused, because a client
    /// that sends one has most likely been through a float already.
    #[serde(with = "decimal_text")]
    pub value: Decimal,
    pub currency: Currency,
}

pub(crate) mod decimal_text {
    use std::str::FromStr;

    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let text = String::deserialize(d).map_err(|_| serde::de::Error::custom("an amount is a decimal string such as \"12000.00\", never a number"))?;
        Decimal::from_str_exact(&text).or_else(|_| Decimal::from_str(&text)).map_err(|_| serde::de::Error::custom(format!("'{text}' is not a decimal number")))
    }
}

/// Amounts beyond this are almost certainly typing errors, and would not fit the read models.
const MAX_SCALE: u32 = 4;
const MAX_INTEGER_DIGITS: usize = 14;

impl Money {
    /// Checks what a CRM amount must be: not negative, at most four decimal places, and
    /// at most fourteen integer digits.
    pub fn validate(&self, field: &'static str) -> Result<(), Rejection> {
        if self.value.is_sign_negative() && !self.value.is_zero() {
            return Err(Rejection::invalid(field, "must not be negative"));
        }
        if self.value.scale() > MAX_SCALE {
            return Err(Rejection::invalid(field, format!("at most {MAX_SCALE} decimal places")));
        }
        if self.value.trunc().abs().to_string().len() > MAX_INTEGER_DIGITS {
            return Err(Rejection::invalid(field, format!("at most {MAX_INTEGER_DIGITS} integer digits")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn eur(v: &str) -> Money {
        Money { value: Decimal::from_str(v).unwrap(), currency: Currency::try_from("EUR".to_string()).unwrap() }
    }

    #[test]
    fn money_keeps_its_exact_decimal_through_json() {
        let json = serde_json::to_string(&eur("12000.10")).unwrap();
        assert_eq!(json, r#"{"value":"12000.10","currency":"EUR"}"#);
        assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), eur("12000.10"));
        assert!(serde_json::from_str::<Money>(r#"{"value":12000.1,"currency":"EUR"}"#).is_err());
        assert!(serde_json::from_str::<Money>(r#"{"value":"12,000","currency":"EUR"}"#).is_err());
    }

    #[test]
    fn bad_amounts_are_named() {
        assert!(eur("0").validate("amount").is_ok());
        assert_eq!(eur("-1").validate("amount").unwrap_err().rule(), "invalid-field");
        assert!(eur("1.23456").validate("amount").is_err());
        assert!(eur("123456789012345").validate("amount").is_err());
        assert!(eur("12345678901234.5").validate("amount").is_ok());
    }

    #[test]
    fn currency_codes_have_the_iso_shape() {
        assert!(Currency::try_from("eur".to_string()).is_err());
        assert!(Currency::try_from("EURO".to_string()).is_err());
        assert!(serde_json::from_str::<Currency>("\"USD\"").is_ok());
    }
}
