//! GitLab's REST API for merge-request notes:
//! `GET|POST /api/v4/projects/{id}/merge_requests/{iid}/notes`,
//! `PUT /api/v4/projects/{id}/merge_requests/{iid}/notes/{note_id}`, where `{id}` is the
//! numeric project id or the URL-encoded `path_with_namespace`; open merge requests:
//! `GET /api/v4/projects/{path}/merge_requests?state=opened` (their `iid`). Auth:
//! `PRIVATE-TOKEN`.
//! Pages: `per_page` (at most 100) and `page`; the next page's number is in `X-Next-Page`
//! (empty on the last page).

use super::ForgeError;
use super::client::{Page, PullRequestRef, encode_segment};

fn project(pr: &PullRequestRef) -> Result<String, ForgeError> {
    match pr.project_id {
        Some(id) => Ok(id.to_string()),
        None if pr.repository.split('/').all(|part| !part.is_empty()) => {
            Ok(encode_segment(&pr.repository))
        }
        None => Err(ForgeError::Invalid(format!(
            "GitLab project {:?} is neither an id nor a path like group/project",
            pr.repository
        ))),
    }
}

pub(super) fn notes(base: &str, pr: &PullRequestRef) -> Result<String, ForgeError> {
    Ok(format!("{base}/api/v4/projects/{}/merge_requests/{}/notes", project(pr)?, pr.number))
}

/// The project's merge requests (`GET`, `?state=opened`), the project named by its path.
pub(super) fn merge_requests(base: &str, repository: &str) -> Result<String, ForgeError> {
    let project =
        PullRequestRef { repository: repository.to_string(), project_id: None, number: 0 };
    Ok(format!("{base}/api/v4/projects/{}/merge_requests", self::project(&project)?))
}

pub(super) fn first_page(collection: &str) -> String {
    page_url(collection, 1)
}

fn page_url(collection: &str, page: u64) -> String {
    format!("{collection}?per_page=100&page={page}")
}

pub(super) fn note(base: &str, pr: &PullRequestRef, id: u64) -> Result<String, ForgeError> {
    Ok(format!("{}/{id}", notes(base, pr)?))
}

pub(super) fn next_page(page: &Page) -> Option<String> {
    let next = page.headers.get("x-next-page")?.to_str().ok()?.trim().parse::<u64>().ok()?;
    // A "next" page that is not after this one would loop.
    (next > u64::from(page.number)).then(|| page_url(page.collection, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn pr(repository: &str, project_id: Option<u64>) -> PullRequestRef {
        PullRequestRef { repository: repository.into(), project_id, number: 7 }
    }

    #[test]
    fn the_project_id_is_preferred_to_the_path() {
        let base = "https://gitlab.com";
        assert_eq!(
            notes(base, &pr("acme/platform/shop", None)).unwrap(),
            "https://gitlab.com/api/v4/projects/acme%2Fplatform%2Fshop/merge_requests/7/notes"
        );
        assert_eq!(
            note(base, &pr("acme/platform/shop", Some(42)), 5).unwrap(),
            "https://gitlab.com/api/v4/projects/42/merge_requests/7/notes/5"
        );
        assert!(notes(base, &pr("", None)).is_err());
        assert!(notes(base, &pr("acme//shop", None)).is_err());
    }

    fn next(header: Option<&'static str>) -> Option<String> {
        let mut headers = HeaderMap::new();
        if let Some(value) = header {
            headers.insert("x-next-page", HeaderValue::from_static(value));
        }
        next_page(&Page { collection: "c", headers: &headers, number: 1, received: 100, seen: 100 })
    }

    #[test]
    fn next_page_from_the_header() {
        assert_eq!(next(None), None);
        assert_eq!(next(Some("")), None);
        assert_eq!(next(Some("2")).as_deref(), Some("c?per_page=100&page=2"));
        assert_eq!(next(Some("1")), None);
        assert_eq!(next(Some("two")), None);
    }
}
