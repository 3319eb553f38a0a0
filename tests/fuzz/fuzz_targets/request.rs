//! Any bytes as one line from an HRI socket client.
#![no_main]
use emoedge::hri::{error_reply, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Request::parse(data) {
        Ok(r) => {
            let Request::Ask { question, .. } = &r;
            assert!(!question.trim().is_empty() && data.len() <= emoedge::hri::MAX_REQUEST_BYTES);
        }
        // Every refusal must make a reply line that is itself valid JSON.
        Err(e) => {
            let reply = error_reply(&e.to_string(), None);
            assert!(!reply.contains('\n') && serde_json::from_str::<serde_json::Value>(&reply).is_ok(), "{reply}");
        }
    }
});
