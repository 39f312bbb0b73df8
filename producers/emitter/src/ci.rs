//! What a CI system tells a job about itself, turned into build provenance fields
//! (`provenant emit --from-ci`).
//!
//! Supported: GitHub Actions, GitLab CI, Jenkins, Buildkite and CircleCI. Build ids are made
//! unique across CI systems (DESIGN.md): `<system>:<project>/<run>[/<attempt>]`, e.g.
//! `github:acme/shop/123456/1`. Detection reads the environment through a lookup function so
//! that it is pure and testable; [`detect_from_env`] uses the process environment.

/// Build context read from a CI system's variables. Any field may be missing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CiContext {
    /// `github`, `gitlab`, `jenkins`, `buildkite` or `circleci`.
    pub system: &'static str,
    pub commit_sha: Option<String>,
    pub branch: Option<String>,
    pub build_id: Option<String>,
    pub pipeline_url: Option<String>,
    pub actor: Option<String>,
    pub repo_url: Option<String>,
    /// A CloudEvents `source` naming the pipeline.
    pub source: Option<String>,
}

/// Detects the CI system from the process environment.
pub fn detect_from_env() -> Option<CiContext> {
    detect(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

/// Detects the CI system from variables looked up by `var`.
pub fn detect(var: impl Fn(&str) -> Option<String>) -> Option<CiContext> {
    let is = |name: &str| var(name).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if is("GITHUB_ACTIONS") {
        let server = var("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into());
        let repo = var("GITHUB_REPOSITORY");
        let run = var("GITHUB_RUN_ID");
        let attempt = var("GITHUB_RUN_ATTEMPT").unwrap_or_else(|| "1".into());
        return Some(CiContext {
            system: "github",
            commit_sha: var("GITHUB_SHA"),
            branch: var("GITHUB_HEAD_REF").or_else(|| var("GITHUB_REF_NAME")),
            build_id: both(&repo, &run).map(|(r, id)| format!("github:{r}/{id}/{attempt}")),
            pipeline_url: both(&repo, &run)
                .map(|(r, id)| format!("{server}/{r}/actions/runs/{id}/attempts/{attempt}")),
            actor: var("GITHUB_ACTOR"),
            repo_url: repo.as_ref().map(|r| format!("{server}/{r}")),
            source: repo.as_ref().map(|r| format!("{server}/{r}/actions")),
        });
    }
    if is("GITLAB_CI") {
        let project = var("CI_PROJECT_PATH");
        let pipeline = var("CI_PIPELINE_ID");
        let job = var("CI_JOB_ID");
        return Some(CiContext {
            system: "gitlab",
            commit_sha: var("CI_COMMIT_SHA"),
            branch: var("CI_COMMIT_REF_NAME"),
            build_id: match (&project, &pipeline, &job) {
                (Some(p), Some(pl), Some(j)) => Some(format!("gitlab:{p}/{pl}/{j}")),
                _ => None,
            },
            pipeline_url: var("CI_JOB_URL").or_else(|| var("CI_PIPELINE_URL")),
            actor: var("GITLAB_USER_LOGIN"),
            repo_url: var("CI_PROJECT_URL"),
            source: var("CI_PROJECT_URL").map(|u| format!("{u}/-/pipelines")),
        });
    }
    if is("BUILDKITE") {
        let org = var("BUILDKITE_ORGANIZATION_SLUG");
        let pipeline = var("BUILDKITE_PIPELINE_SLUG");
        let number = var("BUILDKITE_BUILD_NUMBER");
        let retry = var("BUILDKITE_RETRY_COUNT").unwrap_or_else(|| "0".into());
        return Some(CiContext {
            system: "buildkite",
            commit_sha: var("BUILDKITE_COMMIT"),
            branch: var("BUILDKITE_BRANCH"),
            build_id: match (&org, &pipeline, &number) {
                (Some(o), Some(p), Some(n)) => Some(format!("buildkite:{o}/{p}/{n}/{retry}")),
                _ => None,
            },
            pipeline_url: var("BUILDKITE_BUILD_URL"),
            actor: var("BUILDKITE_BUILD_CREATOR"),
            repo_url: var("BUILDKITE_REPO"),
            source: both(&org, &pipeline).map(|(o, p)| format!("https://buildkite.com/{o}/{p}")),
        });
    }
    if is("CIRCLECI") {
        let user = var("CIRCLE_PROJECT_USERNAME");
        let repo = var("CIRCLE_PROJECT_REPONAME");
        let number = var("CIRCLE_BUILD_NUM");
        return Some(CiContext {
            system: "circleci",
            commit_sha: var("CIRCLE_SHA1"),
            branch: var("CIRCLE_BRANCH"),
            build_id: match (&user, &repo, &number) {
                (Some(u), Some(r), Some(n)) => Some(format!("circleci:{u}/{r}/{n}")),
                _ => None,
            },
            pipeline_url: var("CIRCLE_BUILD_URL"),
            actor: var("CIRCLE_USERNAME"),
            repo_url: var("CIRCLE_REPOSITORY_URL"),
            source: both(&user, &repo).map(|(u, r)| format!("https://circleci.com/gh/{u}/{r}")),
        });
    }
    if let Some(jenkins) = var("JENKINS_URL") {
        let job = var("JOB_NAME");
        let number = var("BUILD_NUMBER");
        // Job names are unique per Jenkins instance only: the host makes them global.
        let host = jenkins
            .split("://")
            .nth(1)
            .unwrap_or(&jenkins)
            .trim_end_matches('/')
            .to_owned();
        return Some(CiContext {
            system: "jenkins",
            commit_sha: var("GIT_COMMIT"),
            branch: var("BRANCH_NAME").or_else(|| var("GIT_BRANCH")),
            build_id: both(&job, &number).map(|(j, n)| format!("jenkins:{host}/{j}/{n}")),
            pipeline_url: var("BUILD_URL"),
            actor: var("BUILD_USER_ID"),
            repo_url: var("GIT_URL"),
            source: var("JOB_URL").or(Some(jenkins)),
        });
    }
    None
}

fn both<'a>(a: &'a Option<String>, b: &'a Option<String>) -> Option<(&'a str, &'a str)> {
    Some((a.as_deref()?, b.as_deref()?))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn github_actions() {
        let ctx = detect(env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_SHA", "4f1c2a9b8e7d6c5b4a3928171615141312111009"),
            ("GITHUB_REF_NAME", "main"),
            ("GITHUB_REPOSITORY", "acme/shop"),
            ("GITHUB_RUN_ID", "123456"),
            ("GITHUB_RUN_ATTEMPT", "2"),
            ("GITHUB_ACTOR", "octocat"),
        ]))
        .unwrap();
        assert_eq!(ctx.system, "github");
        assert_eq!(ctx.build_id.as_deref(), Some("github:acme/shop/123456/2"));
        assert_eq!(
            ctx.pipeline_url.as_deref(),
            Some("https://github.com/acme/shop/actions/runs/123456/attempts/2")
        );
        assert_eq!(ctx.branch.as_deref(), Some("main"));
        assert_eq!(ctx.actor.as_deref(), Some("octocat"));
    }

    #[test]
    fn each_system_gives_a_distinct_build_id_namespace() {
        let gitlab = detect(env(&[
            ("GITLAB_CI", "true"),
            ("CI_PROJECT_PATH", "acme/shop"),
            ("CI_PIPELINE_ID", "77"),
            ("CI_JOB_ID", "901"),
            ("CI_COMMIT_SHA", "abc"),
        ]))
        .unwrap();
        assert_eq!(gitlab.build_id.as_deref(), Some("gitlab:acme/shop/77/901"));
        let jenkins = detect(env(&[
            ("JENKINS_URL", "https://ci.acme.example/"),
            ("JOB_NAME", "shop/main"),
            ("BUILD_NUMBER", "12"),
        ]))
        .unwrap();
        assert_eq!(
            jenkins.build_id.as_deref(),
            Some("jenkins:ci.acme.example/shop/main/12")
        );
        let bk = detect(env(&[
            ("BUILDKITE", "true"),
            ("BUILDKITE_ORGANIZATION_SLUG", "acme"),
            ("BUILDKITE_PIPELINE_SLUG", "shop"),
            ("BUILDKITE_BUILD_NUMBER", "5"),
        ]))
        .unwrap();
        assert_eq!(bk.build_id.as_deref(), Some("buildkite:acme/shop/5/0"));
        let circle = detect(env(&[
            ("CIRCLECI", "true"),
            ("CIRCLE_PROJECT_USERNAME", "acme"),
            ("CIRCLE_PROJECT_REPONAME", "shop"),
            ("CIRCLE_BUILD_NUM", "9"),
        ]))
        .unwrap();
        assert_eq!(circle.build_id.as_deref(), Some("circleci:acme/shop/9"));
        assert_eq!(detect(env(&[("HOME", "/root")])), None);
    }
}
