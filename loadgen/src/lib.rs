//! The load generator: a believable tenant (`tenant`), a rep's day of mixed reads and
//! commands from many virtual users (`traffic`), the figures of a run (`figures`), the CPU
//! and memory of the processes under load (`procs`), and the report (`report`).
//!
//! Everything goes through the public HTTP APIs, so the same run drives Tidemark and the
//! monolithic baseline (`tidemark-baseline`), which serves the same API.

pub mod figures;
pub mod procs;
pub mod report;
pub mod tenant;
pub mod traffic;

/// A system under load: where its command and query APIs listen.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub commands: String,
    pub queries: String,
}

impl Target {
    /// `name=COMMANDS_URL[,QUERIES_URL]`: one URL when one server answers both.
    pub fn parse(text: &str) -> Result<Target, String> {
        let (name, urls) = text.split_once('=').ok_or_else(|| format!("'{text}' is not name=commands_url[,queries_url]"))?;
        let mut urls = urls.split(',').map(|u| u.trim_end_matches('/').to_string());
        let commands = urls.next().filter(|u| u.starts_with("http")).ok_or_else(|| format!("'{text}' names no http URL"))?;
        let queries = urls.next().unwrap_or_else(|| commands.clone());
        Ok(Target { name: name.to_string(), commands, queries })
    }
}

/// One HTTP client for a whole run: connections are pooled and reused, as a browser would.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(4096).timeout(std::time::Duration::from_secs(30)).build().expect("an HTTP client")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_one_or_two_urls() {
        let t = Target::parse("tidemark=http://127.0.0.1:8080,http://127.0.0.1:8082/").unwrap();
        assert_eq!((t.commands.as_str(), t.queries.as_str()), ("http://127.0.0.1:8080", "http://127.0.0.1:8082"));
        let b = Target::parse("baseline=http://127.0.0.1:8090").unwrap();
        assert_eq!(b.queries, b.commands);
        assert!(Target::parse("nothing").is_err() && Target::parse("x=ftp://y").is_err());
    }
}
