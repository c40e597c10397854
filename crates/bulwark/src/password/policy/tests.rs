use super::*;

fn check(password: &str) -> Result<(), PolicyViolation> {
    PasswordPolicy::default().check(password, &["alice"])
}

#[test]
fn length_counts_characters_not_bytes() {
    assert_eq!(check("Short1!"), Err(PolicyViolation::TooShort { min: 12 }));
    assert_eq!(
        check(&"x".repeat(129)),
        Err(PolicyViolation::TooLong { max: 128 })
    );
    // 11 two-byte characters: 22 bytes, still too short.
    assert_eq!(
        check(&"é".repeat(11)),
        Err(PolicyViolation::TooShort { min: 12 })
    );
    assert!(check("żółw gęś jaźń ćma 7").is_ok());
}

#[test]
fn common_passwords_are_refused_in_any_case() {
    for password in [
        "password1234",
        "QwertyUiop123",
        "iloveyou1234",
        "123456789012",
    ] {
        assert_eq!(check(password), Err(PolicyViolation::Common), "{password}");
    }
    assert!(COMMON_PASSWORDS.len() >= 1_000);
    assert!(COMMON_PASSWORDS.iter().all(|p| *p == p.to_lowercase()));
}

#[test]
fn weak_passwords_are_refused_with_feedback() {
    let Err(PolicyViolation::Weak { score, feedback }) = check("aaaaaaaaaaaa") else {
        panic!("expected weak");
    };
    assert!(score < 3);
    let feedback = feedback.expect("zxcvbn explains repeats");
    let message = PolicyViolation::Weak {
        score,
        feedback: Some(feedback),
    }
    .message();
    assert!(message.starts_with("Password is too weak: "), "{message}");
}

#[test]
fn passwords_built_from_the_username_are_weak() {
    let policy = PasswordPolicy::default();
    assert!(policy.check("quetzalcoatl1999", &[]).is_ok());
    assert!(matches!(
        policy.check("quetzalcoatl1999", &["quetzalcoatl"]),
        Err(PolicyViolation::Weak { .. })
    ));
}

#[test]
fn a_long_unusual_passphrase_passes() {
    assert_eq!(check("correct horse battery staple 42!"), Ok(()));
}

#[test]
fn violations_have_pydantic_like_kinds() {
    let kinds: Vec<_> = [
        PolicyViolation::TooShort { min: 12 },
        PolicyViolation::TooLong { max: 128 },
        PolicyViolation::Common,
        PolicyViolation::Weak {
            score: 1,
            feedback: None,
        },
    ]
    .iter()
    .map(PolicyViolation::kind)
    .collect();
    assert_eq!(
        kinds,
        [
            "string_too_short",
            "string_too_long",
            "password_common",
            "password_weak"
        ]
    );
    let detail = PolicyViolation::TooLong { max: 128 }.to_error_detail(["body", "password"]);
    assert_eq!(detail.ctx, Some(json!({ "max_length": 128 })));
    assert_eq!(
        PolicyViolation::Weak {
            score: 1,
            feedback: None
        }
        .message(),
        "Password is too weak"
    );
}
