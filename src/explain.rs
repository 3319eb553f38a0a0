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

/// The facial prior in words: the user turn's evidence.
pub fn facts(face: &Face) -> String {
    let mut ranked: Vec<(Emotion, f32)> = face.emotions.iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    let emotions: Vec<String> = ranked.iter().take(3).map(|(e, p)| format!("{e} {:.0}%", p * 100.0)).collect();
    let aus: Vec<String> = active_aus(face)
        .iter()
        .map(|(au, v)| format!("AU{} {} ({}; intensity {:.1})", au.number(), au.name(), visible_cue(*au), v))
        .collect();
    let pose = face.prior.pose;
    let at = &face.attributes;
    format!(
        "Facial analysis of one person.\n\
         Expression classifier: {}.\n\
         Active facial action units: {}.\n\
         Head pose: yaw {:.0} degrees, pitch {:.0} degrees, roll {:.0} degrees.\n\
         Estimated age {:.0}, gender {} (confidence {:.2}).",
        emotions.join(", "),
        if aus.is_empty() { "none".to_string() } else { aus.join("; ") },
        pose.yaw,
        pose.pitch,
        pose.roll,
        at.age,
        at.gender.as_str(),
        at.gender_confidence,
    )
}

pub const SYSTEM: &str = "You are an expert in facial expression analysis. Using the measured facial cues, \
name the person's emotion and explain it in two sentences, citing the visible facial movements.";

/// The chat turns for an explanation, or for a free question about the face.
pub fn messages(face: &Face, question: Option<&str>) -> Vec<(&'static str, String)> {
    let ask = question.unwrap_or("What emotion does this face show, and why?");
    vec![("system", SYSTEM.to_string()), ("user", format!("{}\n\n{ask}", facts(face)))]
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

/// The part of every prompt that comes before the face: the rendered system
/// turn and the opening of the user turn. A session primed with it once only
/// has to read the face's own evidence when an Analysis arrives.
pub fn shared_prefix(template: Option<&str>) -> Result<String, TemplateError> {
    const MARK: &str = "\u{1}";
    let text = render_chat(template, &[("system", SYSTEM.to_string()), ("user", MARK.to_string())])?;
    Ok(text.split(MARK).next().unwrap_or_default().to_string())
}

/// A session of `llm` whose cache holds [`shared_prefix`]: the start of
/// every explanation, read once. Clone it for each face.
pub fn primed_session(llm: &crate::llm::session::Llm) -> anyhow::Result<crate::llm::session::Session<'_>> {
    let shared = shared_prefix(llm.tokenizer.chat_template.as_deref())?;
    llm.primed(&llm.tokenizer.encode(&shared, true)?)
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
