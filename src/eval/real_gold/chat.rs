//! Chat formatting for the decoder RM: an HH-RLHF transcript (or any
//! prompt) and a response as chat messages, and the model's HF chat
//! template rendered over them with minijinja.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use minijinja::value::{Value, ValueKind, from_args};
use minijinja::{Error as JinjaError, ErrorKind as JinjaErrorKind};
use serde::Serialize;
use serde_json::Value as Json;

use super::common::{CHAT_TEMPLATE_FILE, TOKENIZER_CONFIG_FILE, read_json};
use crate::data::real::hh_rlhf;

/// One chat message as HF chat templates read it (`message.role`,
/// `message['content']`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub role: &'static str,
    pub content: String,
}

const HUMAN_MARKER: &str = "\n\nHuman:";

/// The conversation a chat RM judges: `prompt`'s turns, then `response` as
/// the final assistant turn.
///
/// An HH-RLHF transcript (`"\n\nHuman: …\n\nAssistant: …\n\nHuman: …\n\nAssistant:"`)
/// becomes alternating user/assistant messages; its trailing empty
/// `Assistant:` is the slot the response fills. Any other prompt
/// (UltraFeedback, TL;DR, SHP) is one user message. Contents are trimmed:
/// the transcript's spacing around the markers is layout, not content.
/// Consecutive turns of one role are merged, since many templates reject
/// two user turns in a row.
pub fn conversation(prompt: &str, response: &str) -> Vec<ChatMessage> {
    let mut messages = Vec::new();
    let mut push = |role: &'static str, content: &str| {
        let content = content.trim();
        match messages.last_mut() {
            Some(ChatMessage {
                role: last,
                content: text,
            }) if *last == role => {
                text.push_str("\n\n");
                text.push_str(content);
            }
            _ => messages.push(ChatMessage {
                role,
                content: content.to_string(),
            }),
        }
    };
    let stripped = prompt.trim_start();
    if stripped.starts_with(HUMAN_MARKER.trim_start()) && prompt.contains(hh_rlhf::ASSISTANT_MARKER)
    {
        let transcript = format!("\n\n{stripped}");
        let mut turns: Vec<(&'static str, &str)> = Vec::new();
        let mut rest = transcript.as_str();
        while !rest.is_empty() {
            let (role, marker) = if rest.starts_with(HUMAN_MARKER) {
                ("user", HUMAN_MARKER)
            } else {
                ("assistant", hh_rlhf::ASSISTANT_MARKER)
            };
            rest = &rest[marker.len()..];
            let end = [
                rest.find(HUMAN_MARKER),
                rest.find(hh_rlhf::ASSISTANT_MARKER),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(rest.len());
            turns.push((role, &rest[..end]));
            rest = &rest[end..];
        }
        if let Some(&("assistant", last)) = turns.last()
            && last.trim().is_empty()
        {
            turns.pop();
        }
        for (role, content) in turns {
            push(role, content);
        }
    } else {
        push("user", prompt);
    }
    push("assistant", response);
    messages
}

/// An HF chat template and the special-token strings it may refer to.
pub struct ChatTemplate {
    source: String,
    /// `bos_token`, `eos_token`, … as strings, from `tokenizer_config.json`.
    pub(super) special_tokens: BTreeMap<String, String>,
    /// Where the template came from, for errors.
    origin: PathBuf,
}

impl ChatTemplate {
    /// The dir's chat template: `tokenizer_config.json`'s `chat_template` (a
    /// string, or the entry named `default` of a list), else
    /// `chat_template.jinja`; `None` when the dir has neither.
    pub fn from_dir(dir: &Path) -> anyhow::Result<Option<Self>> {
        let config_path = dir.join(TOKENIZER_CONFIG_FILE);
        let config = match config_path.is_file() {
            true => read_json(&config_path, "the tokenizer's config")?,
            false => Json::Null,
        };
        let mut special_tokens = BTreeMap::new();
        for key in [
            "bos_token",
            "eos_token",
            "unk_token",
            "pad_token",
            "sep_token",
            "cls_token",
            "mask_token",
        ] {
            // A token is a string or an AddedToken object `{"content": …}`.
            let token = match config.get(key) {
                Some(Json::String(s)) => Some(s.clone()),
                Some(Json::Object(o)) => o.get("content").and_then(Json::as_str).map(String::from),
                _ => None,
            };
            if let Some(token) = token {
                special_tokens.insert(key.to_string(), token);
            }
        }
        let (source, origin) = match config.get("chat_template") {
            Some(Json::String(s)) => (s.clone(), config_path),
            Some(Json::Array(templates)) => {
                let default = templates
                    .iter()
                    .find(|t| t.get("name").and_then(Json::as_str) == Some("default"))
                    .and_then(|t| t.get("template"))
                    .and_then(Json::as_str)
                    .with_context(|| {
                        format!(
                            "{}: `chat_template` is a list without an entry named `default`",
                            config_path.display()
                        )
                    })?;
                (default.to_string(), config_path)
            }
            Some(Json::Null) | None => {
                let file = dir.join(CHAT_TEMPLATE_FILE);
                if !file.is_file() {
                    return Ok(None);
                }
                let source = std::fs::read_to_string(&file)
                    .with_context(|| format!("{}: cannot read it", file.display()))?;
                (source, file)
            }
            Some(other) => bail!(
                "{}: `chat_template` is neither a string nor a list: {other}",
                config_path.display()
            ),
        };
        Self::new(source, special_tokens, origin).map(Some)
    }

    /// A template from its source text (a GGUF's `tokenizer.chat_template`),
    /// checked to parse; `origin` names where it came from in errors.
    pub fn new(
        source: String,
        special_tokens: BTreeMap<String, String>,
        origin: PathBuf,
    ) -> anyhow::Result<Self> {
        let template = Self {
            source,
            special_tokens,
            origin,
        };
        // Fail at load, not on the first score, if the template does not parse.
        template
            .environment()
            .template_from_str(&template.source)
            .map_err(|e| {
                anyhow!(
                    "{}: the chat template does not parse: {e:#}",
                    template.origin.display()
                )
            })?;
        Ok(template)
    }

    /// A Jinja environment that behaves like transformers' chat-template
    /// one: trimmed blocks, `raise_exception`, and the Python string methods
    /// templates call (`.strip()`, `.split()`, `.startswith()`, …).
    /// Deliberately absent: `strftime_now` (templates then fall back to a
    /// fixed date, so a score does not depend on the day it was computed)
    /// and `tojson` (only tool-calling branches use it; minijinja's would
    /// not match Python's separators byte for byte).
    fn environment(&self) -> minijinja::Environment<'_> {
        let mut env = minijinja::Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<Value, JinjaError> {
                Err(JinjaError::new(JinjaErrorKind::InvalidOperation, message))
            },
        );
        env.set_unknown_method_callback(python_method);
        env
    }

    /// The conversation as the model was trained to read it (a reward
    /// model's input: no generation prompt).
    pub(super) fn render(&self, messages: &[ChatMessage]) -> anyhow::Result<String> {
        self.render_with(messages, false)
    }

    /// The conversation, followed by the assistant turn's opening when
    /// `add_generation_prompt` (what a model answering it reads next).
    pub fn render_with(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> anyhow::Result<String> {
        let env = self.environment();
        let template = env
            .template_from_str(&self.source)
            .map_err(|e| anyhow!("{}: {e:#}", self.origin.display()))?;
        let mut context: BTreeMap<&str, Value> = self
            .special_tokens
            .iter()
            .map(|(k, v)| (k.as_str(), Value::from(v.as_str())))
            .collect();
        context.insert("messages", Value::from_serialize(messages));
        context.insert("add_generation_prompt", Value::from(add_generation_prompt));
        context.insert("tools", Value::from(()));
        context.insert("documents", Value::from(()));
        template.render(context).map_err(|e| {
            anyhow!(
                "{}: rendering the chat template failed: {e:#}",
                self.origin.display()
            )
        })
    }
}

/// The Python `str` / `dict` methods HF chat templates use, which
/// minijinja does not have: `strip`/`lstrip`/`rstrip`, `split`,
/// `startswith`/`endswith`, `replace`, `upper`/`lower`, and `items`,
/// `keys`, `values`, `get` on maps. Anything else stays an unknown-method
/// error, so an unsupported template fails loudly.
fn python_method(
    state: &minijinja::State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, JinjaError> {
    if value.kind() == ValueKind::Map {
        return match method {
            "items" => {
                let () = from_args(args)?;
                state.apply_filter("items", std::slice::from_ref(value))
            }
            "keys" => {
                let () = from_args(args)?;
                Ok(Value::from(value.try_iter()?.collect::<Vec<_>>()))
            }
            "values" => {
                let () = from_args(args)?;
                let values = value
                    .try_iter()?
                    .map(|k| value.get_item(&k))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Value::from(values))
            }
            "get" => {
                let (key, default): (Value, Option<Value>) = from_args(args)?;
                let item = value.get_item(&key)?;
                Ok(match item.is_undefined() {
                    true => default.unwrap_or(Value::from(())),
                    false => item,
                })
            }
            _ => Err(JinjaError::from(JinjaErrorKind::UnknownMethod)),
        };
    }
    let Some(s) = value.as_str() else {
        return Err(JinjaError::from(JinjaErrorKind::UnknownMethod));
    };
    let strip = |chars: Option<&str>, left: bool, right: bool| -> String {
        let is_stripped = |c: char| match chars {
            Some(set) => set.contains(c),
            None => c.is_whitespace(),
        };
        let mut out = s;
        if left {
            out = out.trim_start_matches(is_stripped);
        }
        if right {
            out = out.trim_end_matches(is_stripped);
        }
        out.to_string()
    };
    Ok(match method {
        "strip" | "lstrip" | "rstrip" => {
            let (chars,): (Option<&str>,) = from_args(args)?;
            Value::from(strip(chars, method != "rstrip", method != "lstrip"))
        }
        "startswith" | "endswith" => {
            let (affix,): (&str,) = from_args(args)?;
            Value::from(match method {
                "startswith" => s.starts_with(affix),
                _ => s.ends_with(affix),
            })
        }
        "split" => {
            let (sep, maxsplit): (Option<&str>, Option<i64>) = from_args(args)?;
            let parts: Vec<String> = match (sep, maxsplit) {
                (None, None | Some(-1)) => s.split_whitespace().map(String::from).collect(),
                (None, Some(_)) => {
                    return Err(JinjaError::new(
                        JinjaErrorKind::InvalidOperation,
                        "str.split(None, maxsplit) is not supported",
                    ));
                }
                (Some(sep), Some(n)) if n >= 0 => {
                    s.splitn(n as usize + 1, sep).map(String::from).collect()
                }
                (Some(sep), _) => s.split(sep).map(String::from).collect(),
            };
            Value::from(parts)
        }
        "replace" => {
            let (old, new): (&str, &str) = from_args(args)?;
            Value::from(s.replace(old, new))
        }
        "upper" | "lower" => {
            let () = from_args(args)?;
            Value::from(match method {
                "upper" => s.to_uppercase(),
                _ => s.to_lowercase(),
            })
        }
        _ => return Err(JinjaError::from(JinjaErrorKind::UnknownMethod)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::real_gold::test_support::*;
    use crate::eval::real_gold::{RealGoldKind, load_real_gold};
    use candle_core::Device;

    #[test]
    fn conversation_splits_hh_transcripts() {
        let msg = |role, content: &str| ChatMessage {
            role,
            content: content.to_string(),
        };
        assert_eq!(
            conversation(HH_PROMPT, " a dog ."),
            vec![
                msg("user", "hello there"),
                msg("assistant", "how are you ?"),
                msg("user", "tell me about a dog"),
                msg("assistant", "a dog ."),
            ]
        );
        // A non-transcript prompt is one user turn, kept whole.
        let tldr = crate::data::real::tldr::prompt_of("cats", "Title", "Post\n\nmore");
        assert_eq!(
            conversation(&tldr, " summary"),
            vec![msg("user", tldr.trim()), msg("assistant", "summary")]
        );
        // Two human turns in a row merge; the prompt's empty final turn is dropped.
        assert_eq!(
            conversation("\n\nHuman: a\n\nHuman: b\n\nAssistant:", " c"),
            vec![msg("user", "a\n\nb"), msg("assistant", "c")]
        );
    }

    #[test]
    fn chat_templates_get_python_methods_and_raise_exception() -> Result {
        let template = |source: &str| ChatTemplate {
            source: source.to_string(),
            special_tokens: BTreeMap::new(),
            origin: PathBuf::from("tokenizer_config.json"),
        };
        let messages = conversation("hi", " there");
        let source = "{{ 'a,b,c'.split(',')|join('|') }};{{ '  x '.strip() }};{{ 'xxhixx'.rstrip('x') }};\
                      {{ 'ab'.startswith('a') }};{{ 'r</think>\\nc'.split('</think>')[-1].lstrip('\\n') }};\
                      {{ {'k': 1}.get('k') }};{{ {'k': 1}.get('z', 2) }};{{ messages[1].content.upper() }}";
        assert_eq!(
            template(source).render(&messages)?,
            "a|b|c;x;xxhi;True;c;1;2;THERE"
        );
        let err =
            err_text(template("{{ raise_exception('roles must alternate') }}").render(&messages));
        assert!(
            err.contains("roles must alternate") && err.contains("tokenizer_config.json"),
            "{err}"
        );
        let err = err_text(template("{{ messages.pop() }}").render(&messages));
        assert!(err.contains("unknown method"), "{err}");

        // A template that raises fails the score with the message; one that
        // does not parse fails the load, naming the file.
        let (dir, _rm, _tok) = seqcls_dir(Some("{{ raise_exception('no system prompt') }}"))?;
        let scorer = load_real_gold(RealGoldKind::SeqCls, dir.path(), &Device::Cpu)?;
        let err = err_text(scorer.score(&strings(&["hi"]), &strings(&[" yo"])));
        assert!(err.contains("no system prompt"), "{err}");
        let (dir, _rm, _tok) = seqcls_dir(Some("{% for m in messages %}"))?;
        let err = err_text(load_real_gold(
            RealGoldKind::SeqCls,
            dir.path(),
            &Device::Cpu,
        ));
        assert!(
            err.contains(TOKENIZER_CONFIG_FILE) && err.contains("does not parse"),
            "{err}"
        );
        Ok(())
    }
}
