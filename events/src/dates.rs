//! The dates a CRM takes from people. A close date in year 1 or 10000 is a typing error,
//! and it would make forecast periods such as "10000-Q1".

use chrono::NaiveDate;

use crate::Rejection;

/// The first and last day a date may name: deals, quotes and tasks of this century and the
/// next, with room for history.
pub const FIRST: NaiveDate = NaiveDate::from_ymd_opt(1900, 1, 1).expect("a calendar day");
pub const LAST: NaiveDate = NaiveDate::from_ymd_opt(2199, 12, 31).expect("a calendar day");

pub fn within_window(field: &'static str, date: NaiveDate) -> Result<NaiveDate, Rejection> {
    if !(FIRST..=LAST).contains(&date) {
        return Err(Rejection::invalid(field, format!("{date} is outside {FIRST} to {LAST}")));
    }
    Ok(date)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_holds_this_century_and_the_next() {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        assert!(within_window("close_date", d(2027, 1, 31)).is_ok());
        assert!(within_window("close_date", d(1900, 1, 1)).is_ok() && within_window("close_date", d(2199, 12, 31)).is_ok());
        assert!(within_window("close_date", d(1, 1, 1)).is_err());
        assert!(within_window("close_date", d(10000, 1, 1)).is_err());
    }
}
