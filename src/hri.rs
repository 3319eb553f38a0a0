//! HRI events and requests: what a robot or kiosk client reads from emoedge's
//! stream, and what it may ask.
//!
//! Events are JSON objects, one per line. Their fields map one to one onto
//! ROS4HRI REP-155 (`hri_msgs`): a `faces` event carries the tracked face IDs
//! (IdsList) and per face its `roi` (NormalizedRegionOfInterest2D),
//! `expression` (Expression), `action_units` (FacialActionUnits) and
//! `soft_biometrics` (SoftBiometrics). The envelope (`seq`, `t`) is added by
//! whoever publishes the stream, so that every client sees one numbering.
//! `firmware-host/hri-events.schema.json` is the JSON Schema.

use serde_json::{json, Map, Value};

use crate::{
    analysis::round,
    heads::Emotion,
    track::{Change, Track, Tracker},
};

/// The largest request line a client may send, newline included.
pub const MAX_REQUEST_BYTES: usize = 4096;
/// The longest question, in characters.
pub const MAX_QUESTION_CHARS: usize = 500;

/// One face of a `faces` event: the still picture's JSON for the track's
/// latest reading, with the smoothed label as its expression and without the
/// landmarks and per-stage timings (a camera stream sends one 30 times a second).
pub fn track_json(track: &Track, width: u32, height: u32) -> Value {
    let mut v = track.face.to_json(width, height);
    if let Some(o) = v.as_object_mut() {
        o.remove("landmarks");
        o.remove("timings_ms");
        o.insert("emotions".into(), emotions_json(track));
        let (valence, arousal) = track.smoothed.valence_arousal();
        o.insert(
            "expression".into(),
            json!({
                "expression": track.label.rep155(),
                "valence": round(valence, 3),
                "arousal": round(arousal, 3),
                "confidence": round(track.smoothed.get(track.label), 4),
            }),
        );
        o.insert("frames_seen".into(), json!(track.seen));
    }
    v
}

fn emotions_json(track: &Track) -> Value {
    track.smoothed.iter().map(|(e, p)| (e.as_str().to_string(), json!(round(p, 4)))).collect::<Map<_, _>>().into()
}

/// The body of the `faces` event for the tracker's state after `frame`.
/// `latency_ms` is the time from the frame's capture to this event.
pub fn faces_event(tracker: &Tracker, frame: u64, width: u32, height: u32, latency_ms: f64) -> Value {
    let faces: Vec<Value> = tracker.visible().map(|t| track_json(t, width, height)).collect();
    let ids: Vec<String> = tracker.visible().map(|t| t.id.to_string()).collect();
    json!({"type": "faces", "frame": frame, "width": width, "height": height,
           "latency_ms": round(latency_ms as f32, 2), "ids": ids, "faces": faces})
}

/// The body of a `track` event for one change.
pub fn change_event(change: &Change) -> Value {
    match change {
        Change::Born { id } => json!({"type": "track", "id": id.to_string(), "change": "born"}),
        Change::Lost { id } => json!({"type": "track", "id": id.to_string(), "change": "lost"}),
        Change::Relabelled { id, from, to } => json!({"type": "track", "id": id.to_string(), "change": "relabelled",
            "from": from.rep155(), "to": to.rep155()}),
    }
}

/// Why an explanation was generated.
#[derive(Clone, Debug, PartialEq)]
pub enum Trigger {
    /// A new face, or a face whose label changed.
    Expression(Emotion),
    /// A client's question.
    Ask { question: String, request: Option<Value> },
}

/// The body of an `explanation` event.
pub fn explanation_event(face: u32, trigger: &Trigger, text: &str, tokens: usize, ms: f64) -> Value {
    let mut v = json!({"type": "explanation", "face": face.to_string(), "text": text.trim(),
                       "tokens": tokens, "ms": round(ms as f32, 1)});
    match trigger {
        Trigger::Expression(e) => {
            v["trigger"] = "expression".into();
            v["expression"] = e.rep155().into();
        }
        Trigger::Ask { question, request } => {
            v["trigger"] = "ask".into();
            v["question"] = question.as_str().into();
            if let Some(r) = request {
                v["request"] = r.clone();
            }
        }
    }
    v
}

/// A published event's line: the envelope (sequence number and Unix time in
/// seconds) first, then the body's fields.
pub fn envelope(seq: u64, unix_seconds: f64, body: &Value) -> String {
    let mut o = Map::new();
    o.insert("seq".into(), json!(seq));
    o.insert("t".into(), json!((unix_seconds * 1e6).round() / 1e6));
    if let Some(b) = body.as_object() {
        o.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    Value::Object(o).to_string()
}

/// A reply to one client alone (it has no `seq`: other clients never see it,
/// and their numbering must have no gaps).
pub fn error_reply(message: &str, request: Option<&Value>) -> String {
    let mut v = json!({"type": "error", "message": message});
    if let Some(r) = request {
        v["request"] = r.clone();
    }
    v.to_string()
}

/// What a client may send: one JSON object per line.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// `{"ask": "Is she smiling?", "face": 3, "id": "q1"}`: a question about a
    /// tracked face; `id` (any JSON value) comes back in the answer.
    Ask { question: String, face: u32, id: Option<Value> },
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum RequestError {
    #[error("request too long: at most {MAX_REQUEST_BYTES} bytes a line")]
    TooLong,
    #[error("request is not UTF-8 text")]
    NotText,
    #[error("request is not valid JSON ({0}); send one object per line, e.g. {{\"ask\": \"Why?\", \"face\": 0}}")]
    Json(String),
    #[error("request must be a JSON object such as {{\"ask\": \"Why?\", \"face\": 0}}")]
    NotObject,
    #[error("unknown request field `{0}`; known: ask, face, id")]
    UnknownField(String),
    #[error("`ask` must be a non-empty string of at most {MAX_QUESTION_CHARS} characters")]
    BadQuestion,
    #[error("`face` must be a tracked face's id, a number or a string of digits, as in the `ids` of a faces event")]
    BadFace,
    #[error("the request names no action; send {{\"ask\": \"...\", \"face\": <id>}}")]
    NoAction,
}

impl Request {
    /// Parses one line (without its newline). Never panics, whatever the bytes.
    pub fn parse(line: &[u8]) -> Result<Request, RequestError> {
        if line.len() > MAX_REQUEST_BYTES {
            return Err(RequestError::TooLong);
        }
        let text = std::str::from_utf8(line).map_err(|_| RequestError::NotText)?;
        let value: Value = serde_json::from_str(text).map_err(|e| RequestError::Json(e.to_string()))?;
        let Value::Object(mut o) = value else { return Err(RequestError::NotObject) };
        if let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "ask" | "face" | "id")) {
            return Err(RequestError::UnknownField(k.chars().take(40).collect()));
        }
        let id = o.remove("id");
        let Some(ask) = o.remove("ask") else { return Err(RequestError::NoAction) };
        let question = match ask {
            Value::String(s) if !s.trim().is_empty() && s.chars().count() <= MAX_QUESTION_CHARS => s,
            _ => return Err(RequestError::BadQuestion),
        };
        let face = match o.remove("face") {
            Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            Some(Value::String(s)) => s.parse::<u32>().ok(),
            _ => None,
        }
        .ok_or(RequestError::BadFace)?;
        Ok(Request::Ask { question, face, id })
    }

    /// The client's `id` for this request, to echo in replies.
    pub fn id(&self) -> Option<&Value> {
        match self {
            Request::Ask { id, .. } => id.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_requests() {
        let r = Request::parse(br#"{"ask": "Is she smiling?", "face": 3}"#).unwrap();
        assert_eq!(r, Request::Ask { question: "Is she smiling?".into(), face: 3, id: None });
        let r = Request::parse(br#"{"ask":"Why?","face":"12","id":"q1"}"#).unwrap();
        assert_eq!(r.id(), Some(&json!("q1")));
    }

    #[test]
    fn bad_requests_are_errors_not_panics() {
        let cases: [(&[u8], RequestError); 9] = [
            (b"", RequestError::Json(String::new())),
            (b"\xff\xfe", RequestError::NotText),
            (b"[1,2]", RequestError::NotObject),
            (br#"{"ask":"x","face":1,"rm":"/"}"#, RequestError::UnknownField("rm".into())),
            (br#"{"ask":"","face":1}"#, RequestError::BadQuestion),
            (br#"{"ask":"x","face":-1}"#, RequestError::BadFace),
            (br#"{"ask":"x","face":"../etc"}"#, RequestError::BadFace),
            (br#"{"face":1}"#, RequestError::NoAction),
            (br#"{"ask":"x","face":99999999999}"#, RequestError::BadFace),
        ];
        for (line, want) in cases {
            let got = Request::parse(line).unwrap_err();
            match want {
                RequestError::Json(_) => assert!(matches!(got, RequestError::Json(_)), "{got:?}"),
                w => assert_eq!(got, w),
            }
        }
        assert_eq!(Request::parse(&vec![b' '; MAX_REQUEST_BYTES + 1]), Err(RequestError::TooLong));
        let long = format!(r#"{{"ask":"{}","face":1}}"#, "a".repeat(MAX_QUESTION_CHARS + 1));
        assert_eq!(Request::parse(long.as_bytes()), Err(RequestError::BadQuestion));
    }

    #[test]
    fn envelope_comes_first() {
        let line = envelope(7, 1.5, &json!({"type": "track", "id": "1", "change": "born"}));
        assert_eq!(line, r#"{"seq":7,"t":1.5,"type":"track","id":"1","change":"born"}"#);
        let e = error_reply("no", Some(&json!(4)));
        assert!(!e.contains("seq") && e.contains("\"request\":4"));
    }
}
