//! `{{token}}` rendering for `TEMPLATE`: fail-closed, so a typo never ships a
//! half-rendered file. Whitespace inside the braces is allowed.

/// True for `[A-Za-z0-9_]+`.
pub fn valid_token_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Renders `text`. An unknown token, an invalid name or an unterminated `{{` is
/// an error; so is a token the caller defined that the text never uses (that is
/// almost always a misspelt name). `builtin` tokens may go unused.
pub fn render(
    text: &str,
    defined: &[(String, String)],
    builtin: &[(&str, String)],
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut used = vec![false; defined.len()];
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(format!(
                "unterminated '{{{{' at byte {}",
                text.len() - rest.len() + start
            ));
        };
        let name = after[..end].trim();
        if !valid_token_name(name) {
            return Err(format!(
                "invalid token '{{{{{}}}}}': names are letters, digits and '_'",
                &after[..end]
            ));
        }
        if let Some(i) = defined.iter().position(|(k, _)| k == name) {
            used[i] = true;
            out.push_str(&defined[i].1);
        } else if let Some((_, v)) = builtin.iter().find(|(k, _)| *k == name) {
            out.push_str(v);
        } else {
            let mut known: Vec<&str> = defined.iter().map(|(k, _)| k.as_str()).collect();
            known.extend(builtin.iter().map(|(k, _)| *k));
            return Err(format!(
                "unknown token {}; defined: {}",
                crate::output::quoted(name),
                known.join(" ")
            ));
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    if let Some(i) = used.iter().position(|u| !u) {
        return Err(format!(
            "token '{}' is defined but the template never uses it",
            defined[i].0
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn renders_defined_and_builtin_tokens() {
        let out = render(
            "listen {{ port }} as {{cell_name}}{{port}}\n",
            &toks(&[("port", "8080")]),
            &[("cell_name", "web".into())],
        )
        .unwrap();
        assert_eq!(out, "listen 8080 as web8080\n");
    }

    #[test]
    fn fails_closed() {
        let b = [("cell_name", "web".to_string())];
        assert_eq!(
            render("{{nope}}", &[], &b).unwrap_err(),
            "unknown token 'nope'; defined: cell_name"
        );
        assert!(render("a {{port", &[], &b)
            .unwrap_err()
            .starts_with("unterminated"));
        assert!(render("{{a-b}}", &[], &b)
            .unwrap_err()
            .starts_with("invalid token"));
        assert_eq!(
            render("x", &toks(&[("prot", "1")]), &b).unwrap_err(),
            "token 'prot' is defined but the template never uses it"
        );
    }
}
