//! Prompts built from an [`Analysis`](crate::analysis::Analysis) face, as
//! EMO-LLaMA and EmoLA feed their LLaMA: the emotion distribution, the active
//! action units by FACS name and visible cue, the head pose, age and gender.
//! The answer is forced to start with the predicted label; the model only
//! supplies the reasons. Also: the faithfulness check on an explanation.

use crate::{analysis::Face, heads::Emotion, prior::ActionUnit, sink::terminal::ACTIVE_AU};

/// What an AU looks like, in words a reader (and a small LLM) can ground.
pub fn visible_cue(au: ActionUnit) -> &'static str {
    match au {
        ActionUnit::Au1 => "the inner ends of the eyebrows are raised",
        ActionUnit::Au2 => "the outer ends of the eyebrows are raised",
        ActionUnit::Au4 => "the eyebrows are lowered and drawn together",
        ActionUnit::Au6 => "the cheeks are raised, narrowing the eyes",
        ActionUnit::Au9 => "the nose is wrinkled",
        ActionUnit::Au12 => "the lip corners are pulled up",
        ActionUnit::Au15 => "the lip corners are pulled down",
        ActionUnit::Au17 => "the chin is pushed up",
        ActionUnit::Au20 => "the lips are stretched sideways",
        ActionUnit::Au25 => "the lips are parted",
        ActionUnit::Au26 => "the jaw is dropped",
    }
}

/// The AUs at or above the active threshold, strongest first.
pub fn active_aus(face: &Face) -> Vec<(ActionUnit, f32)> {
    let mut aus: Vec<(ActionUnit, f32)> = ActionUnit::ALL
        .iter()
        .copied()
        .zip(face.prior.action_units.iter().copied())
        .filter(|(_, v)| *v >= ACTIVE_AU)
        .collect();
    aus.sort_by(|a, b| b.1.total_cmp(&a.1));
    aus
}

/// An AU's visible cue as the prompt says it: few tokens, since each one is
/// read on the way to the first word of the answer, and worded so that an
/// answer copying it cites the cue ([`is_faithful`]).
fn short_cue(au: ActionUnit) -> &'static str {
    match au {
        ActionUnit::Au1 => "inner eyebrows raised",
        ActionUnit::Au2 => "outer eyebrows raised",
        ActionUnit::Au4 => "eyebrows drawn together",
        ActionUnit::Au6 => "cheeks raised",
        ActionUnit::Au9 => "nose wrinkled",
        ActionUnit::Au12 => "lip corners pulled up",
        ActionUnit::Au15 => "lip corners pulled down",
        ActionUnit::Au17 => "chin raised",
        ActionUnit::Au20 => "lips stretched",
        ActionUnit::Au25 => "lips parted",
        ActionUnit::Au26 => "jaw dropped",
    }
}

/// The default question about a face.
const ASK: &str = "What emotion does this face show, and why?";

/// The classifier's label, the first line of the evidence. It comes before
/// everything else that varies, so that a session primed once per label
/// ([`primed_prefixes`]) already holds it.
fn label_line(top: Emotion) -> String {
    format!("Expression classifier: {top}.\n")
}

/// The rest of the facial prior in words, after `label_line`: the active
/// AUs' visible cues strongest first, a runner-up emotion where the
/// classifier gives one 10 % or more, age and gender. Kept short, because
/// the time to the first explanation token is mostly the time to read it;
/// and the cues come first, so that their heading ([`CUES`]) is read once
/// per label ([`primed_prefixes`]) rather than per face (it was 5 of 47
/// tokens fed). The top label's own percentage is left out: the label line
/// already names it as the classifier's pick, and where the pick is in
/// doubt the runner-up line says so (8 of 45 tokens fed for a clear face).
/// Head pose is left out: it is not evidence of an expression.
pub fn facts(face: &Face) -> String {
    let mut ranked: Vec<(Emotion, f32)> = face.emotions.iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    let doubt = match ranked.get(1).filter(|(_, p)| *p >= 0.1) {
        Some((e, p)) => format!("Also possible: {e}, {:.0}%.\n", p * 100.0),
        None => String::new(),
    };
    let cues: Vec<&str> = active_aus(face).iter().map(|(au, _)| short_cue(*au)).collect();
    let cues = if cues.is_empty() { "none".to_string() } else { cues.join(", ") };
    let at = &face.attributes;
    format!("{CUES} {cues}.\n{doubt}Age about {:.0}, {}.", at.age, at.gender.as_str())
}

/// The heading of the cues, the first of the facts of every face.
const CUES: &str = "Visible cues:";

pub const SYSTEM: &str = "You are an expert in facial expression analysis. Using the measured facial cues, \
name the person's emotion and explain it in two sentences, citing the visible facial movements.";

/// The chat turns for an explanation, or for a free question about the face.
/// The default question comes first, so that everything before the
/// measured values is the same for every face with the same label; a free
/// question comes last, after the evidence it is about.
pub fn messages(face: &Face, question: Option<&str>) -> Vec<(&'static str, String)> {
    let evidence = format!("{}{}", label_line(face.emotions.top().0), facts(face));
    let user = match question {
        None => format!("{ASK}\n{evidence}"),
        Some(q) => format!("{evidence}\n\n{q}"),
    };
    vec![("system", SYSTEM.to_string()), ("user", user)]
}

/// The start of the answer, forced: the predicted label, then the model goes on.
pub fn forced_prefix(face: &Face) -> String {
    format!("The person shows {} because", face.emotions.top().0)
}

/// The full prompt text for one face (chat turns rendered with `template`,
/// then the forced answer prefix), and that prefix. A free question gets no
/// forced prefix: its answer is the model's own.
pub fn prompt(face: &Face, question: Option<&str>, template: Option<&str>) -> Result<(String, String), TemplateError> {
    let mut text = render_chat(template, &messages(face, question))?;
    let prefix = if question.is_none() { forced_prefix(face) } else { String::new() };
    text.push_str(&prefix);
    Ok((text, prefix))
}

/// The system turn for a clip: the dynamics, not a single frame.
pub const DYNAMICS_SYSTEM: &str = "You are an expert in facial expression analysis. From the measured timeline of \
one person's face in a video, describe in two sentences how the expression changes over time, citing the \
facial movements and when they happen.";

/// An emotion as the adjective that completes "the person looks ...".
fn adjective(e: Emotion) -> &'static str {
    match e {
        Emotion::Neutral => "neutral",
        Emotion::Happiness => "happy",
        Emotion::Sadness => "sad",
        Emotion::Surprise => "surprised",
        Emotion::Fear => "afraid",
        Emotion::Disgust => "disgusted",
        Emotion::Anger => "angry",
    }
}

/// The prompt for explaining a track's dynamics, and its forced prefix
/// (the first segment's label, so the story starts from the measurement).
/// A free `question` replaces the default one and gets no forced prefix.
pub fn dynamics_prompt(
    timeline: &crate::timeline::Timeline,
    min_confidence: f32,
    smoothing: f32,
    question: Option<&str>,
    template: Option<&str>,
) -> Result<(String, String), TemplateError> {
    let evidence = timeline.describe(min_confidence, smoothing);
    let ask = question.unwrap_or("How does this person's expression change over the clip, and why?");
    let turns = [("system", DYNAMICS_SYSTEM.to_string()), ("user", format!("{evidence}\n\n{ask}"))];
    let segments = timeline.segments();
    let prefix = match segments.as_slice() {
        _ if question.is_some() => String::new(),
        [] => String::new(),
        [only] => format!("The person looks {} throughout, because", adjective(only.expression)),
        [first, next, ..] => format!(
            "At first the person looks {}; from {:.1} s they look {}, because",
            adjective(first.expression),
            next.from,
            adjective(next.expression)
        ),
    };
    let mut text = render_chat(template, &turns)?;
    text.push_str(&prefix);
    Ok((text, prefix))
}

/// The LLM's account of a track's dynamics: the forced prefix and two
/// sentences, each piece of text passed to `on_text` as it comes (the
/// prefix first). The small model rambles on past two sentences, so
/// generation stops at the second full stop.
pub fn explain_dynamics(
    llm: &crate::llm::session::Llm,
    timeline: &crate::timeline::Timeline,
    min_confidence: f32,
    smoothing: f32,
    question: Option<&str>,
    mut on_text: impl FnMut(&str),
) -> anyhow::Result<String> {
    let template = llm.tokenizer.chat_template.as_deref();
    let (prompt, prefix) = dynamics_prompt(timeline, min_confidence, smoothing, question, template)?;
    let ids = llm.tokenizer.encode(&prompt, true)?;
    on_text(&prefix);
    let mut text = prefix;
    let sentences = |t: &str| t.matches(". ").count() + usize::from(t.ends_with('.'));
    llm.session()?.generate_while(&ids, 60, crate::llm::sampler::Sampling::default(), |piece| {
        text.push_str(piece);
        let done = sentences(&text) >= 2;
        on_text(if done { piece.rfind('.').map_or(piece, |e| &piece[..=e]) } else { piece });
        !done
    })?;
    if let Some((end, _)) = text.match_indices(". ").nth(1) {
        text.truncate(end + 1);
    }
    Ok(text.trim().to_string())
}

/// The prompt prefixes worth reading once, before any face: the part of
/// every prompt before the evidence (the rendered system turn and the
/// opening of the user turn), and for each label the default explanation's
/// prompt up to and including `label_line`. An Analysis then only costs
/// its measured values, the end of the turn and the forced answer prefix.
/// (A prefix that ends inside a token of the real prompt is simply not used:
/// [`Primed::fork`](crate::llm::session::Primed::fork) matches token ids.)
pub fn primed_prefixes(template: Option<&str>) -> Result<Vec<String>, TemplateError> {
    const MARK: &str = "\u{1}";
    let before_mark = |user: String| -> Result<String, TemplateError> {
        let text = render_chat(template, &[("system", SYSTEM.to_string()), ("user", user)])?;
        Ok(text.split(MARK).next().unwrap_or_default().to_string())
    };
    let mut prefixes = vec![before_mark(MARK.to_string())?];
    for e in Emotion::ALL {
        // The cues' heading opens the facts of every face: read once too.
        prefixes.push(before_mark(format!("{ASK}\n{}{CUES}{MARK}", label_line(e)))?);
    }
    Ok(prefixes)
}

/// Sessions of `llm` whose caches hold [`primed_prefixes`]: fork one for
/// each face with [`Primed::fork`](crate::llm::session::Primed::fork).
pub fn primed_sessions(llm: &crate::llm::session::Llm) -> anyhow::Result<crate::llm::session::Primed<'_>> {
    let prefixes = primed_prefixes(llm.tokenizer.chat_template.as_deref())?;
    let ids = prefixes.iter().map(|p| llm.tokenizer.encode(p, true)).collect::<Result<Vec<_>, _>>()?;
    llm.primed_set(&ids)
}

#[derive(Debug, thiserror::Error)]
#[error("the model's chat template cannot be rendered: {0}")]
pub struct TemplateError(String);

/// Renders chat turns with the model's own (Jinja) chat template, ending with
/// the assistant's turn opened. Without a template, ChatML.
pub fn render_chat(template: Option<&str>, turns: &[(&str, String)]) -> Result<String, TemplateError> {
    let chatml = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}\
                  {% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
    let mut env = minijinja::Environment::new();
    env.add_function("raise_exception", |msg: String| -> Result<String, minijinja::Error> {
        Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
    });
    env.add_template("chat", template.unwrap_or(chatml)).map_err(|e| TemplateError(e.to_string()))?;
    let messages: Vec<minijinja::Value> = turns
        .iter()
        .map(|(role, content)| minijinja::context! { role => *role, content => content.as_str() })
        .collect();
    env.get_template("chat")
        .and_then(|t| t.render(minijinja::context! { messages => messages, add_generation_prompt => true, bos_token => "", eos_token => "" }))
        .map_err(|e| TemplateError(e.to_string()))
}

/// Whether an explanation is faithful to the analysis: it names the predicted
/// emotion, cites the visible cue (or FACS name) of at least one active AU,
/// and gives no other basic emotion as the answer. With no active AU, the
/// cue condition holds trivially.
pub fn is_faithful(top: Emotion, active: &[ActionUnit], text: &str) -> bool {
    let t = text.to_lowercase();
    let names = |e: Emotion| -> Vec<&'static str> {
        match e {
            Emotion::Neutral => vec!["neutral", "calm", "relaxed"],
            Emotion::Happiness => vec!["happiness", "happy", "joy"],
            Emotion::Sadness => vec!["sadness", "sad"],
            Emotion::Surprise => vec!["surprise", "surprised"],
            Emotion::Fear => vec!["fear", "afraid", "scared"],
            Emotion::Disgust => vec!["disgust", "disgusted"],
            Emotion::Anger => vec!["anger", "angry"],
        }
    };
    let names_top = names(top).iter().any(|n| t.contains(n));
    let cue_words = |au: ActionUnit| -> Vec<&'static str> {
        match au {
            ActionUnit::Au1 | ActionUnit::Au2 => {
                vec!["brow raise", "raised brow", "eyebrows are raised", "raised eyebrow", "eyebrows raised"]
            }
            ActionUnit::Au4 => vec!["brow lower", "lowered brow", "furrow", "drawn together", "frown"],
            ActionUnit::Au6 => vec!["cheek", "narrow"],
            ActionUnit::Au9 => vec!["nose", "wrinkl"],
            ActionUnit::Au12 => vec!["lip corner", "corners of the mouth", "smil", "pulled up", "upturned"],
            ActionUnit::Au15 => vec!["lip corner", "corners of the mouth", "pulled down", "downturned"],
            ActionUnit::Au17 => vec!["chin"],
            ActionUnit::Au20 => vec!["stretch"],
            ActionUnit::Au25 => {
                vec!["lips are parted", "parted lips", "lips part", "open mouth", "mouth open", "parted"]
            }
            ActionUnit::Au26 => vec!["jaw"],
        }
    };
    // A face with no active AU (a neutral one) has no cue to cite.
    let cites_au = active.is_empty()
        || active
            .iter()
            .any(|au| cue_words(*au).iter().any(|w| t.contains(w)) || t.contains(&format!("au{}", au.number())));
    // "Another basic emotion as the answer": an assertion such as "shows fear"
    // or "is angry", not a mention in passing.
    let contradicts = Emotion::ALL.iter().filter(|e| **e != top).any(|e| {
        names(*e)
            .iter()
            .any(|n| ["shows ", "is ", "expresses ", "feels ", "looks "].iter().any(|v| t.contains(&format!("{v}{n}"))))
    });
    names_top && cites_au && !contradicts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faithful_names_the_label_and_a_cue() {
        let active = [ActionUnit::Au12, ActionUnit::Au25];
        assert!(is_faithful(
            Emotion::Happiness,
            &active,
            "The person shows happiness because the lip corners are pulled up."
        ));
        assert!(!is_faithful(Emotion::Happiness, &active, "The person shows happiness because she is nice."));
        assert!(!is_faithful(
            Emotion::Happiness,
            &active,
            "The person shows happiness because she smiles, but really she is angry."
        ));
        assert!(!is_faithful(Emotion::Sadness, &active, "She smiles with parted lips."));
    }

    #[test]
    fn chatml_is_the_fallback_template() {
        let s = render_chat(None, &[("user", "hi".to_string())]).unwrap();
        assert_eq!(s, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
    }
}
