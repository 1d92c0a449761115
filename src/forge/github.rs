//! GitHub's REST API for pull-request comments (a pull request's conversation comments are
//! its issue's comments): `GET|POST /repos/{owner}/{repo}/issues/{n}/comments`,
//! `PATCH /repos/{owner}/{repo}/issues/comments/{id}`; open pull requests:
//! `GET /repos/{owner}/{repo}/pulls?state=open` (their `number`). Pages: `per_page` (at most 100) and
//! `page`; the next page is the `Link` header's `rel="next"` URL, followed as given.

use super::ForgeError;
use super::client::{Page, PullRequestRef, encode_segment, owner_and_name};

pub(super) fn comments(base: &str, pr: &PullRequestRef) -> Result<String, ForgeError> {
    let (owner, name) = owner_and_name(&pr.repository)?;
    Ok(format!(
        "{base}/repos/{}/{}/issues/{}/comments",
        encode_segment(owner),
        encode_segment(name),
        pr.number
    ))
}

/// The repository's pull requests (`GET`, `?state=open`).
pub(super) fn pulls(base: &str, repository: &str) -> Result<String, ForgeError> {
    let (owner, name) = owner_and_name(repository)?;
    Ok(format!("{base}/repos/{}/{}/pulls", encode_segment(owner), encode_segment(name)))
}

pub(super) fn first_page(collection: &str) -> String {
    format!("{collection}?per_page=100&page=1")
}

pub(super) fn comment(base: &str, pr: &PullRequestRef, id: u64) -> Result<String, ForgeError> {
    let (owner, name) = owner_and_name(&pr.repository)?;
    Ok(format!(
        "{base}/repos/{}/{}/issues/comments/{id}",
        encode_segment(owner),
        encode_segment(name)
    ))
}

pub(super) fn next_page(page: &Page) -> Option<String> {
    let link = page.headers.get(reqwest::header::LINK)?.to_str().ok()?;
    next_link(link)
}

/// The `rel="next"` target of a `Link` header: `<url>; rel="next", <url>; rel="last"`.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|entry| {
        let mut parts = entry.split(';');
        let target = parts.next()?.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = parts.any(|param| {
            let Some((key, value)) = param.split_once('=') else { return false };
            key.trim().eq_ignore_ascii_case("rel")
                && value.trim().trim_matches('"').split_whitespace().any(|rel| rel == "next")
        });
        is_next.then(|| target.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_link_is_found_among_others() {
        let header = r#"<https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=1>; rel="prev", <https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=3>; rel="next", <https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=9>; rel="last""#;
        assert_eq!(
            next_link(header).as_deref(),
            Some("https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=3")
        );
        assert_eq!(next_link(r#"<https://x/a?page=1>; rel="first""#), None);
        assert_eq!(next_link("garbage"), None);
        assert_eq!(next_link(""), None);
    }

    #[test]
    fn paths() {
        let pr = PullRequestRef { repository: "acme/shop".into(), project_id: None, number: 7 };
        assert_eq!(
            comments("https://api.github.com", &pr).unwrap(),
            "https://api.github.com/repos/acme/shop/issues/7/comments"
        );
        assert_eq!(
            comment("https://ghe.example/api/v3", &pr, 99).unwrap(),
            "https://ghe.example/api/v3/repos/acme/shop/issues/comments/99"
        );
    }
}
