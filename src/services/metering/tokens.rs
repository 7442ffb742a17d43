//! Token counts of a call: what the provider's answer (or a stream chunk) reports, the
//! estimate when it reports nothing, the estimate admission reserves before the call,
//! and the cost of a count at a model's price.
use std::borrow::Cow;

use serde_json::Value;

use crate::domain::Micros;

/// Token counts of one call, from the upstream's `usage` or estimated when it gave none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub input: i64,
    pub output: i64,
}

/// The cost of `t` at a price of (input, output) micro-dollars per million tokens, rounded
/// up so that no metered call is free when the model has a price.
pub fn cost(price: Option<(Micros, Micros)>, t: Tokens) -> Micros {
    let Some((pin, pout)) = price else {
        return Micros::ZERO;
    };
    // Millionths of a micro-dollar, then rounded up to whole micro-dollars. The counts
    // come from the provider's answer: a negative one counts as none (it must not credit
    // the ledger) and a huge one saturates instead of overflowing.
    let micro = t
        .input
        .max(0)
        .saturating_mul(pin.get())
        .saturating_add(t.output.max(0).saturating_mul(pout.get()));
    Micros::new(micro.saturating_add(999_999) / 1_000_000)
}

/// About four characters per token: the estimate used when the upstream reports nothing.
pub fn estimate_tokens(chars: usize) -> i64 {
    chars.div_ceil(4) as i64
}

/// Tokens to reserve for a chat call: the prompt estimate and the output the client allows.
pub fn estimate_chat(prompt_chars: usize, body: &serde_json::Map<String, Value>) -> Tokens {
    let output = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_i64)
        .unwrap_or(1024)
        .clamp(0, 1_000_000);
    Tokens {
        input: estimate_tokens(prompt_chars),
        output,
    }
}

/// The length of `v` as JSON text, counted without writing the text.
pub fn json_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing into a counter cannot fail.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// What metering read from an answer or one stream chunk.
#[derive(Debug, Default)]
pub struct Seen {
    pub tokens: Option<Tokens>,
    /// Characters of delivered text (stream deltas).
    pub chars: usize,
    /// The model the provider says served the call.
    pub model: Option<String>,
}

/// The parts of an answer (or of one stream chunk) that metering reads; serde skips the
/// rest without building it (a completion can be large).
#[derive(serde::Deserialize)]
struct Answer<'a> {
    #[serde(default)]
    usage: Option<UsageBlock>,
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    choices: Option<Vec<Choice<'a>>>,
}

#[derive(serde::Deserialize)]
struct UsageBlock {
    #[serde(default)]
    prompt_tokens: Option<i64>,
    #[serde(default)]
    completion_tokens: Option<i64>,
}

#[derive(serde::Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
}

#[derive(serde::Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
}

/// A token count as the provider reported it, held to what one call can use: the answer
/// comes from an address the organization chose, and a negative or absurd count must not
/// credit the ledger or overflow the period's sums.
fn reported(n: Option<i64>) -> i64 {
    n.unwrap_or(0).clamp(0, MAX_REPORTED_TOKENS)
}

/// More tokens than any model takes or writes in one call (a hundred million).
const MAX_REPORTED_TOKENS: i64 = 100_000_000;

/// Reads an answer body or one SSE chunk's data; a shape the typed parse does not expect
/// is read the slow way, so that an odd but valid answer is still metered from its own
/// figures.
pub fn read_answer(body: &[u8]) -> Seen {
    if let Ok(a) = serde_json::from_slice::<Answer<'_>>(body) {
        let chars = a
            .choices
            .iter()
            .flatten()
            .filter_map(|c| c.delta.as_ref().and_then(|d| d.content.as_deref()))
            .map(str::len)
            .sum();
        return Seen {
            tokens: a.usage.map(|u| Tokens {
                input: reported(u.prompt_tokens),
                output: reported(u.completion_tokens),
            }),
            chars,
            model: a.model.map(Cow::into_owned),
        };
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Seen::default();
    };
    let u = &v["usage"];
    let tokens = u.is_object().then(|| Tokens {
        input: reported(u["prompt_tokens"].as_i64()),
        output: reported(u["completion_tokens"].as_i64()),
    });
    let chars = v["choices"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["delta"]["content"].as_str())
        .map(str::len)
        .sum();
    Seen {
        tokens,
        chars,
        model: v["model"].as_str().map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str) -> (Option<(i64, i64)>, usize) {
        let seen = read_answer(body.as_bytes());
        (seen.tokens.map(|t| (t.input, t.output)), seen.chars)
    }

    #[test]
    fn cost_rounds_up_and_is_zero_without_a_price() {
        let t = Tokens {
            input: 1000,
            output: 10,
        };
        assert_eq!(cost(None, t), Micros::ZERO);
        // 1000 × 0.15 + 10 × 0.6 = 156 µ$ exactly.
        let price = Some((Micros::new(150_000), Micros::new(600_000)));
        assert_eq!(cost(price, t), Micros::new(156));
        let one = Tokens {
            input: 1,
            output: 0,
        };
        let price = Some((Micros::new(1), Micros::ZERO));
        assert_eq!(cost(price, one), Micros::new(1));
    }

    #[test]
    fn reported_counts_are_held_between_zero_and_what_one_call_can_use() {
        let seen = read_answer(
            br#"{"usage":{"prompt_tokens":-5,"completion_tokens":9223372036854775807}}"#,
        );
        let t = seen.tokens.unwrap_or_default();
        assert_eq!((t.input, t.output), (0, MAX_REPORTED_TOKENS));
        let seen = read_answer(br#"{"usage":{"prompt_tokens":-5,"completion_tokens":"x"}}"#);
        let t = seen.tokens.unwrap_or_default();
        assert_eq!((t.input, t.output), (0, 0));
    }

    #[test]
    fn cost_of_absurd_counts_saturates_and_negative_counts_cost_nothing() {
        let price = Some((Micros::new(150_000), Micros::new(600_000)));
        let huge = Tokens {
            input: i64::MAX,
            output: i64::MAX,
        };
        assert_eq!(cost(price, huge), Micros::new(i64::MAX / 1_000_000));
        let negative = Tokens {
            input: -1_000_000,
            output: -5,
        };
        assert_eq!(cost(price, negative), Micros::ZERO);
    }

    #[test]
    fn usage_and_delivered_text_are_read_from_answers_and_chunks() {
        let (t, c) = read(
            r#"{"id":"x","choices":[{"message":{"content":"Hello"}}],"usage":{"prompt_tokens":11,"completion_tokens":7}}"#,
        );
        assert_eq!((t, c), (Some((11, 7)), 0));
        let (t, c) =
            read(r#"{"choices":[{"delta":{"content":"Hé\n"}},{"delta":{}}],"usage":null}"#);
        assert!(t.is_none());
        assert_eq!(c, "Hé\n".len());
        // Shapes the typed reading does not expect are still read.
        assert_eq!(
            read(r#"{"choices":"odd","usage":{"prompt_tokens":3}}"#),
            (Some((3, 0)), 0)
        );
        assert_eq!(
            read(
                r#"{"choices":[{"delta":{"content":5}}],"usage":{"prompt_tokens":"x","completion_tokens":2}}"#
            ),
            (Some((0, 2)), 0)
        );
        assert_eq!(read("not json"), (None, 0));
        let seen =
            read_answer(br#"{"model":"gpt-4o-mini-2024-07-18","usage":{"prompt_tokens":1}}"#);
        assert_eq!(seen.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
        assert_eq!(seen.tokens.map(|t| t.input), Some(1));
        let seen = read_answer(br#"{"model":"m-odd","choices":"odd"}"#);
        assert_eq!(seen.model.as_deref(), Some("m-odd"));
    }

    #[test]
    fn estimates_count_four_characters_a_token_and_reserve_the_allowed_output() {
        let v = serde_json::json!([{"role": "user", "content": "Hé \"x\""}]);
        assert_eq!(json_len(&v), v.to_string().len());
        assert_eq!(estimate_tokens(0), 0);
        assert_eq!(estimate_tokens(1), 1);
        assert_eq!(estimate_tokens(8), 2);
        let body = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert_eq!(
            estimate_chat(9, &body(serde_json::json!({}))),
            Tokens {
                input: 3,
                output: 1024
            }
        );
        let capped = body(serde_json::json!({"max_tokens": 16, "max_completion_tokens": 5}));
        assert_eq!(estimate_chat(0, &capped).output, 5);
        let huge = body(serde_json::json!({"max_tokens": 5_000_000_000_i64}));
        assert_eq!(estimate_chat(0, &huge).output, 1_000_000);
        let negative = body(serde_json::json!({"max_tokens": -3}));
        assert_eq!(estimate_chat(0, &negative).output, 0);
    }
}
