//! Money is an exact decimal with an ISO 4217 currency code; never a float.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::Rejection;

/// A three-letter upper-case currency code. Any such code decodes (an event of the log stays
/// readable whatever the list of currencies becomes); a command must name a currency in use
/// ([`Money::validate`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The decimal places of the currency's minor unit (2 for EUR, 0 for JPY, 3 for BHD),
    /// when ISO 4217 lists it as a currency in use. `None` for a code it does not list
    /// (ZZZ), for funds, precious metals and other special codes (XAU, XXX), and for a
    /// superseded currency.
    pub fn minor_units(&self) -> Option<u32> {
        in_use(iso_currency::Currency::from_code(&self.0)?)
    }
}

fn in_use(listed: iso_currency::Currency) -> Option<u32> {
    if !listed.flags().is_empty() {
        return None;
    }
    listed.exponent().map(u32::from)
}

/// Every currency in use, with the decimal places of its minor unit.
pub fn currencies_in_use() -> impl Iterator<Item = (&'static str, u32)> {
    use iso_currency::IntoEnumIterator;
    iso_currency::Currency::iter().filter_map(|c| Some((c.code(), in_use(c)?)))
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
        let not_plain = || serde::de::Error::custom(format!("'{text}' is not a plain decimal such as \"12000.00\" (digits, one point, a leading minus at most)"));
        if !is_plain_decimal(&text) {
            return Err(not_plain());
        }
        Decimal::from_str_exact(&text).or_else(|_| Decimal::from_str(&text)).map_err(|_| not_plain())
    }

    /// `12`, `-0.5`, `12000.00`; not `+5`, `1e3`, `.5`, `5.` or ` 5`.
    pub(crate) fn is_plain_decimal(text: &str) -> bool {
        let digits = text.strip_prefix('-').unwrap_or(text);
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        all_digits(whole) && all_digits(fraction)
    }
}

/// Amounts beyond this are almost certainly typing errors, and would not fit the read models.
pub const MAX_INTEGER_DIGITS: usize = 14;

/// Checks a decimal a CRM takes from people: not negative, at most `max_scale` decimal
/// places, and at most fourteen integer digits.
pub fn validate_decimal(field: &'static str, value: Decimal, max_scale: u32) -> Result<(), Rejection> {
    if value.is_sign_negative() && !value.is_zero() {
        return Err(Rejection::invalid(field, "must not be negative"));
    }
    if value.scale() > max_scale {
        return Err(Rejection::invalid(field, format!("at most {max_scale} decimal places")));
    }
    if value.trunc().abs().to_string().len() > MAX_INTEGER_DIGITS {
        return Err(Rejection::invalid(field, format!("at most {MAX_INTEGER_DIGITS} integer digits")));
    }
    Ok(())
}

impl Money {
    /// Checks what a CRM amount must be: in a currency in use (ISO 4217), with at most its
    /// minor unit's decimal places (two for EUR), not negative, at most fourteen integer digits.
    pub fn validate(&self, field: &'static str) -> Result<(), Rejection> {
        let Some(minor_units) = self.currency.minor_units() else {
            return Err(Rejection::invalid(field, format!("'{}' is not an ISO 4217 currency in use", self.currency)));
        };
        validate_decimal(field, self.value, minor_units)
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
        assert!(eur("1.234").validate("amount").is_err(), "cents are the euro's smallest unit");
        assert!(eur("123456789012345").validate("amount").is_err());
        assert!(eur("12345678901234.5").validate("amount").is_ok());
    }

    #[test]
    fn currencies_in_use_and_their_minor_units() {
        let money = |v: &str, c: &str| Money { value: Decimal::from_str(v).unwrap(), currency: Currency::try_from(c.to_string()).unwrap() };
        assert!(money("1.5", "JPY").validate("amount").is_err(), "the yen has no minor unit");
        assert!(money("15", "JPY").validate("amount").is_ok());
        assert!(money("1.125", "BHD").validate("amount").is_ok());
        for code in ["ZZZ", "XAU", "XXX", "BTC"] {
            assert!(money("1", code).validate("amount").is_err(), "{code}");
        }
        assert!(Currency::try_from("ZZZ".to_string()).is_ok(), "an event naming any code still decodes");
    }

    #[test]
    fn amounts_are_plain_decimals() {
        for plain in ["12", "-0.5", "12000.00", "0"] {
            assert!(serde_json::from_str::<Money>(&format!(r#"{{"value":"{plain}","currency":"EUR"}}"#)).is_ok(), "{plain}");
        }
        for odd in ["+5", "1e3", ".5", "5.", " 5", "1_000", ""] {
            assert!(serde_json::from_str::<Money>(&format!(r#"{{"value":"{odd}","currency":"EUR"}}"#)).is_err(), "{odd}");
        }
    }

    #[test]
    fn currency_codes_have_the_iso_shape() {
        assert!(Currency::try_from("eur".to_string()).is_err());
        assert!(Currency::try_from("EURO".to_string()).is_err());
        assert!(serde_json::from_str::<Currency>("\"USD\"").is_ok());
    }
}
