//! Sprig's float arithmetic (`addf`, `add1f`, `subf`, `mulf`, `divf`): shopspring/decimal
//! v1.3.1, as Sprig runs it. Each float becomes the shortest decimal that reads back as it
//! (`0.1` is 0.1, not 0.1000000000000000055...), the decimals are added, subtracted and
//! multiplied exactly and divided to 16 places (halves away from zero), and the result is the
//! float nearest the decimal: `sprig_addf 0.1 0.2` is `0.3`, where floats give
//! 0.30000000000000004.

use gotmpl::Value;
use num_bigint::BigInt;
use num_traits::{Signed, Zero};

use super::super::Function;
use super::super::go::{self, arity, fail};
use super::numbers::to_float64;

/// The decimal functions, without the `sprig_` prefix.
pub(in crate::template::consul::helpers) const DECIMALS: &[(&str, Function)] = &[
    ("addf", |a| fold("addf", &Value::Float(0.0), a, Op::Add)),
    ("add1f", |a| {
        arity("add1f", a, 1)?;
        fold("add1f", &a[0], &[Value::Int(1)], Op::Add)
    }),
    ("subf", |a| match a.split_first() {
        Some((first, rest)) => fold("subf", first, rest, Op::Sub),
        None => Err(fail("subf", "wrong number of arguments")),
    }),
    ("mulf", |a| match a.split_first() {
        Some((first, rest)) => fold("mulf", first, rest, Op::Mul),
        None => Err(fail("mulf", "wrong number of arguments")),
    }),
    ("divf", |a| match a.split_first() {
        Some((first, rest)) => fold("divf", first, rest, Op::Div),
        None => Err(fail("divf", "wrong number of arguments")),
    }),
];

#[derive(Clone, Copy)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

/// shopspring's `DivisionPrecision`.
const DIVISION_PRECISION: i64 = 16;

/// The largest exponent gap two decimals may be aligned across: floats span about 10^-324 to
/// 10^308, and a sum across the whole range is a 650-digit integer, no more.
const MAX_ALIGN: i64 = 1_000;

/// A decimal: `coefficient` × 10^`exponent`.
#[derive(Clone, Debug, PartialEq)]
struct Decimal {
    coefficient: BigInt,
    exponent: i64,
}

impl Decimal {
    /// shopspring's `NewFromFloat`: the shortest decimal that reads back as `f`.
    fn from_float(f: f64) -> Option<Decimal> {
        if !f.is_finite() {
            return None;
        }
        // Rust's `{:e}` gives the shortest round-trip digits, as Go's strconv does.
        let text = format!("{f:e}");
        let (mantissa, exponent) = text.split_once('e')?;
        let exponent: i64 = exponent.parse().ok()?;
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let coefficient: BigInt = format!("{whole}{fraction}").parse().ok()?;
        Some(Decimal {
            coefficient,
            exponent: exponent - fraction.len() as i64,
        })
    }

    /// Both at the smaller exponent.
    fn aligned(&self, other: &Decimal) -> Option<(BigInt, BigInt, i64)> {
        let exponent = self.exponent.min(other.exponent);
        let scale = |d: &Decimal| -> Option<BigInt> {
            let gap = u32::try_from(d.exponent - exponent).ok()?;
            (i64::from(gap) <= MAX_ALIGN).then(|| &d.coefficient * BigInt::from(10).pow(gap))
        };
        Some((scale(self)?, scale(other)?, exponent))
    }

    fn apply(&self, op: Op, other: &Decimal) -> Option<Decimal> {
        Some(match op {
            Op::Add | Op::Sub => {
                let (a, b, exponent) = self.aligned(other)?;
                let coefficient = if matches!(op, Op::Add) { a + b } else { a - b };
                Decimal {
                    coefficient,
                    exponent,
                }
            }
            Op::Mul => Decimal {
                coefficient: &self.coefficient * &other.coefficient,
                exponent: self.exponent + other.exponent,
            },
            Op::Div => self.div_round(other)?,
        })
    }

    /// shopspring's `DivRound(d2, 16)`: the quotient cut to 16 places, then a half or more of
    /// the last place rounded away from zero.
    fn div_round(&self, other: &Decimal) -> Option<Decimal> {
        if other.coefficient.is_zero() {
            return None;
        }
        // self / other = (c1 / c2) × 10^(e1 - e2); scaled so that the quotient has 16 places.
        let shift = self.exponent - other.exponent + DIVISION_PRECISION;
        let (mut numerator, mut denominator) =
            (self.coefficient.clone(), other.coefficient.clone());
        if shift.abs() > MAX_ALIGN {
            return None;
        }
        let scale = BigInt::from(10).pow(u32::try_from(shift.abs()).ok()?);
        if shift >= 0 {
            numerator *= scale;
        } else {
            denominator *= scale;
        }
        let quotient = &numerator / &denominator;
        let remainder = &numerator % &denominator;
        let mut coefficient = quotient;
        if (remainder.abs() * 2) >= denominator.abs() {
            let negative = self.coefficient.is_negative() != other.coefficient.is_negative();
            coefficient += if negative { -1 } else { 1 };
        }
        Some(Decimal {
            coefficient,
            exponent: -DIVISION_PRECISION,
        })
    }

    /// The float nearest the decimal (Rust's parsing rounds correctly, as `big.Rat` does).
    fn to_float(&self) -> f64 {
        format!("{}e{}", self.coefficient, self.exponent)
            .parse()
            .unwrap_or(f64::NAN)
    }
}

/// Sprig's `execDecimalOp`: `first` then each of `rest`, through cast's `ToFloat64`.
fn fold(function: &str, first: &Value, rest: &[Value], op: Op) -> gotmpl::Result<Value> {
    let decimal = |v: &Value| {
        Decimal::from_float(to_float64(v))
            .ok_or_else(|| fail(function, "a value is not a finite number"))
    };
    let mut total = decimal(first)?;
    for value in rest {
        let operand = decimal(value)?;
        if matches!(op, Op::Div) && operand.coefficient.is_zero() {
            return Err(fail(function, "decimal division by zero"));
        }
        total = total
            .apply(op, &operand)
            .ok_or_else(|| fail(function, "the numbers are too far apart"))?;
    }
    Ok(go::float(total.to_float()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calc(op: Op, a: f64, b: f64) -> f64 {
        let (a, b) = (
            Decimal::from_float(a).expect("finite"),
            Decimal::from_float(b).expect("finite"),
        );
        a.apply(op, &b).expect("computes").to_float()
    }

    #[test]
    fn decimals_compute_as_shopspring_does() {
        assert_eq!(calc(Op::Add, 0.1, 0.2), 0.3);
        assert_eq!(calc(Op::Sub, 0.3, 0.1), 0.2);
        assert_eq!(calc(Op::Mul, 1.1, 1.1), 1.21);
        assert_eq!(calc(Op::Div, 1.0, 3.0), 0.3333333333333333);
        assert_eq!(calc(Op::Div, 2.0, 3.0), 0.6666666666666667);
        assert_eq!(calc(Op::Div, -2.0, 3.0), -0.6666666666666667);
        assert_eq!(calc(Op::Add, 1e300, 1e-300), 1e300);
        assert!(
            Decimal::from_float(1.0)
                .expect("one")
                .div_round(&Decimal::from_float(0.0).expect("zero"))
                .is_none()
        );
        assert_eq!(
            Decimal::from_float(123.45),
            Some(Decimal {
                coefficient: BigInt::from(12345),
                exponent: -2
            })
        );
    }
}
