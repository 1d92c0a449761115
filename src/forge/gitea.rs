//! Gitea's (and Forgejo's) REST API for pull-request comments (a pull request is an issue):
//! `GET|POST /api/v1/repos/{owner}/{repo}/issues/{index}/comments`,
//! `PATCH /api/v1/repos/{owner}/{repo}/issues/comments/{id}`; open pull requests:
//! `GET /api/v1/repos/{owner}/{repo}/pulls?state=open` (their `number`). Auth:
//! `Authorization: token`.
//!
//! Pages: Gitea's list endpoints take `page` and `limit` (capped by the server's
//! `MAX_RESPONSE_ITEMS`, 50 by default) and answer `X-Total-Count`. This endpoint, in the
//! Gitea versions read, ignores `page` and `limit` and answers every comment at once; both
//! behaviours are handled: the client stops once it has seen `X-Total-Count` comments, on a
//! short page, or (in the client) on a page with nothing new.

use super::ForgeError;
use super::client::{Page, PullRequestRef, encode_segment, owner_and_name};

/// The page size asked for; Gitea's default cap.
pub(super) const LIMIT: usize = 50;

pub(super) fn comments(base: &str, pr: &PullRequestRef) -> Result<String, ForgeError> {
    let (owner, name) = owner_and_name(&pr.repository)?;
    Ok(format!(
        "{base}/api/v1/repos/{}/{}/issues/{}/comments",
        encode_segment(owner),
        encode_segment(name),
        pr.number
    ))
}

/// The repository's pull requests (`GET`, `?state=open`).
pub(super) fn pulls(base: &str, repository: &str) -> Result<String, ForgeError> {
    let (owner, name) = owner_and_name(repository)?;
    Ok(format!("{base}/api/v1/repos/{}/{}/pulls", encode_segment(owner), encode_segment(name)))
}

pub(super) fn first_page(collection: &str) -> String {
    page_url(collection, 1)
}

fn page_url(collection: &str, page: u32) -> String {
    format!("{collection}?page={page}&limit={LIMIT}")
}

pub(super) fn comment(base: &str, pr: &PullRequestRef, id: u64) -> Result<String, ForgeError> {
    let (owner, name) = owner_and_name(&pr.repository)?;
    Ok(format!(
        "{base}/api/v1/repos/{}/{}/issues/comments/{id}",
        encode_segment(owner),
        encode_segment(name)
    ))
}

pub(super) fn next_page(page: &Page) -> Option<String> {
    let total = page
        .headers
        .get("x-total-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    let more = match total {
        Some(total) => page.seen < total,
        None => page.received >= LIMIT,
    };
    (more && page.received > 0).then(|| page_url(page.collection, page.number + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn next(
        total: Option<&'static str>,
        number: u32,
        received: usize,
        seen: usize,
    ) -> Option<String> {
        let mut headers = HeaderMap::new();
        if let Some(total) = total {
            headers.insert("x-total-count", HeaderValue::from_static(total));
        }
        next_page(&Page { collection: "c", headers: &headers, number, received, seen })
    }

    #[test]
    fn paging_stops_at_the_total_or_a_short_page() {
        assert_eq!(next(Some("120"), 1, 50, 50).as_deref(), Some("c?page=2&limit=50"));
        assert_eq!(next(Some("120"), 3, 20, 120), None);
        // A server that ignores paging answers everything on page 1.
        assert_eq!(next(Some("120"), 1, 120, 120), None);
        assert_eq!(next(None, 1, 50, 50).as_deref(), Some("c?page=2&limit=50"));
        assert_eq!(next(None, 2, 3, 53), None);
        assert_eq!(next(Some("9"), 2, 0, 7), None);
    }
}
