//! Vault policy HCL (from a policy repository, so written by any team that opens a pull
//! request): parsing never panics, and a policy that parses is read back identically from its
//! normal form, so that plan compares what Vault will hold.
#![no_main]

use hydrant::policy::acl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(policy) = acl::parse(text) {
        let normal = policy.normal_form();
        let again = acl::parse(&normal).expect("the normal form parses");
        assert_eq!(again.normal_form(), normal, "the normal form is stable");
        let mut paths: Vec<&str> = policy.rules.iter().map(|r| r.path.as_str()).collect();
        let mut back: Vec<&str> = again.rules.iter().map(|r| r.path.as_str()).collect();
        paths.sort_unstable();
        back.sort_unstable();
        assert_eq!(paths, back, "every path survives");
    }
});
