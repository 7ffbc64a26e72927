//! The Vault Agent configuration reader (HCL or its JSON form, written by people and mounted from
//! ConfigMaps): it never panics, and whatever it translates survives the trip through JSON that
//! the webhook makes, read for `hydrant agent` and for `hydrant exec` alike.
#![no_main]

use injector::agent_config::vault_agent::{self, Syntax};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = vault_agent::is_vault_agent("agent", text);
    for syntax in [Syntax::Hcl, Syntax::Json] {
        let Ok(parsed) = vault_agent::parse(text, syntax, "fuzz.hcl") else {
            continue;
        };
        let merged = parsed.clone().merge(parsed);
        // As `hydrant agent` reads it (files, or the process supervisor) and as `hydrant exec`
        // reads it.
        for translated in [merged.clone().translate(), merged.translate_exec()] {
            let Ok(translated) = translated else {
                continue;
            };
            let config = translated.config;
            let _ = config.validate();
            let _ = config.validate_exec();
            let json = serde_json::to_string(&config).expect("a translated config serialises");
            let back = injector::agent_config::parse(&json).expect("its JSON parses again");
            assert_eq!(back, config, "the JSON trip changed the config");
        }
    }
});
