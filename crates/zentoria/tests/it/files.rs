//! Knowledge over real HTTP: uploads (and every way they can be hostile), listing, downloads
//! with ranges, changes, deletes that cascade, ingestion of each format, and keyword search
//! whose citations point at the right text.

use std::io::Write;

use serde_json::{Value, json};
use zentoria_core::Role;

use crate::harness::{TestServer, assert_error};

const GUIDE_MD: &str = "# Zentoria guide\n\nZentoria keeps your documents close.\n\n\
## Installing\n\nRun the single binary; the embedded database needs no setup at all.\n\n\
## Backups\n\nCopy the data directory while the server is stopped, or use the snapshot command \
for a consistent backup of the quokka archive.\n";

/// A minimal, valid PDF with one page per entry of `pages` (Helvetica text).
pub fn tiny_pdf(pages: &[&str]) -> Vec<u8> {
    let n = pages.len();
    // Objects: 1 catalog, 2 pages, 3 font, then (page, content) per page.
    let mut objects: Vec<String> = Vec::new();
    objects.push("<< /Type /Catalog /Pages 2 0 R >>".into());
    let kids: Vec<String> = (0..n).map(|i| format!("{} 0 R", 4 + 2 * i)).collect();
    objects.push(format!(
        "<< /Type /Pages /Kids [{}] /Count {n} >>",
        kids.join(" ")
    ));
    objects.push("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".into());
    for (i, text) in pages.iter().enumerate() {
        let content = format!("BT /F1 12 Tf 72 712 Td ({text}) Tj ET");
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            5 + 2 * i
        ));
        objects.push(format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ));
    }
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// A DOCX whose `word/document.xml` is `document_xml`.
pub fn docx(document_xml: &[u8]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        z.start_file("[Content_Types].xml", opts).unwrap();
        z.write_all(br#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#).unwrap();
        z.start_file("word/document.xml", opts).unwrap();
        z.write_all(document_xml).unwrap();
        z.finish().unwrap();
    }
    buf.into_inner()
}

fn docx_body(paragraphs: &[(&str, Option<&str>)]) -> Vec<u8> {
    let mut xml = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>"#,
    );
    for (text, style) in paragraphs {
        xml.push_str("<w:p>");
        if let Some(s) = style {
            xml.push_str(&format!(r#"<w:pPr><w:pStyle w:val="{s}"/></w:pPr>"#));
        }
        xml.push_str(&format!("<w:r><w:t>{text}</w:t></w:r></w:p>"));
    }
    xml.push_str("</w:body></w:document>");
    xml.into_bytes()
}

async fn search(s: &TestServer, key: &str, body: Value) -> Value {
    let r = s.post("/api/v1/search", Some(key), &body).await;
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "search {body}: {v}");
    v
}

#[tokio::test]
async fn upload_list_download_dedupe_and_delete() {
    let s = TestServer::start().await;
    let key = s.admin_key.clone();
    let f = s
        .upload(
            &key,
            "guide.md",
            GUIDE_MD.as_bytes(),
            &[("tags", "docs, ops")],
        )
        .await;
    let id = f["id"].as_str().unwrap().to_owned();
    assert_eq!(f["name"], "guide.md");
    assert_eq!(f["kind"], "markdown");
    assert_eq!(f["size"], GUIDE_MD.len());
    assert_eq!(f["tags"], json!(["docs", "ops"]));
    assert_eq!(
        f["sha256"],
        zentoria_core::crypto::sha256_hex(GUIDE_MD.as_bytes())
    );

    let f = s.settled(&key, &id).await;
    assert_eq!(f["status"], "ready", "{f}");
    assert!(f["chunk_count"].as_i64().unwrap() >= 1);

    // The same bytes again: the existing file, not a copy.
    let r = s
        .upload_to(
            "/api/v1/files",
            &key,
            "again.md",
            None,
            GUIDE_MD.as_bytes().to_vec(),
            &[],
        )
        .await;
    assert_eq!(r.status(), 200);
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["created"], false);
    assert_eq!(again["file"]["id"], id.as_str());

    // Listed, through both list endpoints, with filters.
    for path in ["/api/v1/files", "/api/v1/mcp/files"] {
        let page: Value = s.get(path, Some(&key)).await.json().await.unwrap();
        assert_eq!(page["total"], 1, "{page}");
        assert_eq!(page["files"][0]["id"], id.as_str());
    }
    let page: Value = s
        .get(
            "/api/v1/files?tag=ops&type=markdown&status=ready",
            Some(&key),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 1);
    let page: Value = s
        .get("/api/v1/files?tag=nope", Some(&key))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 0);
    assert_error(
        s.get("/api/v1/files?sort=owner", Some(&key)).await,
        400,
        "invalid_request",
    )
    .await;
    assert_error(
        s.get("/api/v1/files?status=done", Some(&key)).await,
        400,
        "invalid_request",
    )
    .await;
    assert_error(
        s.get("/api/v1/files?limit=0", Some(&key)).await,
        400,
        "invalid_request",
    )
    .await;

    // Download, whole and by range.
    let r = s
        .get(&format!("/api/v1/files/{id}/content"), Some(&key))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/markdown; charset=utf-8");
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"guide.md\"")
    );
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(r.text().await.unwrap(), GUIDE_MD);
    let r = s
        .http
        .get(s.at(&format!("/api/v1/files/{id}/content")))
        .header("X-API-Key", &key)
        .header("Range", "bytes=2-9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        format!("bytes 2-9/{}", GUIDE_MD.len())
    );
    assert_eq!(r.text().await.unwrap(), &GUIDE_MD[2..10]);
    let r = s
        .http
        .get(s.at(&format!("/api/v1/files/{id}/content")))
        .header("X-API-Key", &key)
        .header("Range", "bytes=99999-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);

    // Searchable, then deleted with everything that hangs off it.
    let hits = search(&s, &key, json!({"query": "quokka backup"})).await;
    assert_eq!(hits["hits"][0]["file_id"], id.as_str());
    let blob = s
        .test_db
        .data_dir()
        .join("blobs")
        .join(&f["sha256"].as_str().unwrap()[..2])
        .join(&f["sha256"].as_str().unwrap()[2..]);
    assert!(blob.exists());
    let r = s
        .http
        .delete(s.at(&format!("/api/v1/files/{id}")))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_error(
        s.get(&format!("/api/v1/files/{id}"), Some(&key)).await,
        404,
        "not_found",
    )
    .await;
    assert!(!blob.exists(), "the blob goes with its last file");
    let hits = search(&s, &key, json!({"query": "quokka backup"})).await;
    assert_eq!(hits["hits"], json!([]), "deleted files are not found");
    let chunks: i64 = match &s.db {
        zentoria_store::Db::Sqlite(p) => sqlx::query_scalar("SELECT COUNT(*) FROM chunks")
            .fetch_one(p)
            .await
            .unwrap(),
        zentoria_store::Db::Postgres(p) => sqlx::query_scalar("SELECT COUNT(*) FROM chunks")
            .fetch_one(p)
            .await
            .unwrap(),
    };
    assert_eq!(chunks, 0, "chunks go with their file");

    // Every write was audited.
    let audit: Value = s
        .get("/api/v1/audit?limit=100", Some(&key))
        .await
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .or(audit.as_array())
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"file.upload"), "{actions:?}");
    assert!(actions.contains(&"file.delete"), "{actions:?}");
    s.stop().await;
}

#[tokio::test]
async fn hostile_uploads_are_refused_with_clear_errors() {
    let s = TestServer::start_with(|c| c.knowledge.max_upload_bytes = 64 * 1024).await;
    let key = s.admin_key.clone();
    let up = |name: &'static str, ct: Option<&'static str>, bytes: Vec<u8>| {
        let s = &s;
        let key = key.clone();
        async move {
            s.upload_to("/api/v1/files", &key, name, ct, bytes, &[])
                .await
        }
    };
    let mut elf = b"\x7fELF\x02\x01\x01\0".to_vec();
    elf.extend_from_slice(&[0u8; 200]);
    let body = assert_error(
        up("report.pdf", None, elf.clone()).await,
        415,
        "unsupported_media_type",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("report.pdf"),
        "{body}"
    );
    assert_error(
        up("tool.exe", None, b"MZ\x90\0\x03\0\0\0".to_vec()).await,
        415,
        "unsupported_media_type",
    )
    .await;
    assert_error(
        up("notes.txt", None, elf).await,
        415,
        "unsupported_media_type",
    )
    .await;
    // Invalid UTF-8 after the sniffed head, and a NUL byte.
    let mut bad = "a".repeat(10_000).into_bytes();
    bad.extend_from_slice(b"\xff\xfe broken");
    let body = assert_error(
        up("long.txt", None, bad).await,
        415,
        "unsupported_media_type",
    )
    .await;
    assert!(
        body["error"]["message"].as_str().unwrap().contains("UTF-8"),
        "{body}"
    );
    assert_error(
        up("nul.txt", None, b"text\0more".to_vec()).await,
        415,
        "unsupported_media_type",
    )
    .await;
    // A declared type that contradicts the content.
    assert_error(
        up("page.txt", Some("image/png"), b"just text".to_vec()).await,
        415,
        "unsupported_media_type",
    )
    .await;
    // Too big: the 413 names the limit.
    let body = assert_error(
        up("big.txt", None, vec![b'a'; 65 * 1024]).await,
        413,
        "payload_too_large",
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("64 KiB"),
        "{body}"
    );
    // Empty, nameless, missing.
    assert_error(
        up("empty.txt", None, Vec::new()).await,
        400,
        "invalid_request",
    )
    .await;
    let r = s
        .http
        .post(s.at("/api/v1/files"))
        .header("X-API-Key", &key)
        .multipart(reqwest::multipart::Form::new().text("collection", "x"))
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "invalid_request").await;
    let r = s
        .http
        .post(s.at("/api/v1/files"))
        .header("X-API-Key", &key)
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body(
            "--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nabc",
        )
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "invalid_request").await;
    // Path traversal in the name: only the last component survives.
    let f = s
        .upload(&key, "../../etc/passwd.txt", b"root:x:0:0", &[])
        .await;
    assert_eq!(f["name"], "passwd.txt");
    let f = s.upload(&key, "..\\..\\win.ini", b"[boot]", &[]).await;
    assert_eq!(f["name"], "win.ini");
    // Nothing refused left a file or a staging leftover behind.
    let page: Value = s
        .get("/api/v1/files", Some(&key))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 2, "{page}");
    let leftovers = std::fs::read_dir(s.test_db.data_dir().join("tmp"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 0, "staging files are removed");
    s.stop().await;
}

#[tokio::test]
async fn broken_documents_fail_ingestion_with_a_reason() {
    let s = TestServer::start().await;
    let key = s.admin_key.clone();
    let good = tiny_pdf(&["Hello page one", "Second page about walruses"]);
    let truncated = good[..good.len() / 2].to_vec();
    let mut garbage = b"%PDF-1.7\n".to_vec();
    garbage.extend((0..4000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
    // 300 MiB of zeros compress to ~300 KiB: a zip bomb inside a DOCX.
    let bomb = {
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .large_file(true);
            z.start_file("[Content_Types].xml", opts).unwrap();
            z.write_all(b"<Types/>").unwrap();
            z.start_file("word/document.xml", opts).unwrap();
            let zeros = vec![b' '; 1024 * 1024];
            for _ in 0..300 {
                z.write_all(&zeros).unwrap();
            }
            z.finish().unwrap();
        }
        buf.into_inner()
    };
    let no_document = {
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            z.start_file("hello.txt", zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(b"hi").unwrap();
            z.finish().unwrap();
        }
        buf.into_inner()
    };
    // A zip without Word parts is not a DOCX at all: refused at the door.
    let r = s
        .upload_to("/api/v1/files", &key, "nodoc.docx", None, no_document, &[])
        .await;
    assert_error(r, 415, "unsupported_media_type").await;
    let broken_xml = docx(b"<w:document><w:body><w:p><w:t>unclosed");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated.pdf", truncated),
        ("garbage.pdf", garbage),
        ("bomb.docx", bomb),
        ("brokenxml.docx", broken_xml),
    ];
    let mut ids = Vec::new();
    for (name, bytes) in cases {
        let f = s.upload(&key, name, &bytes, &[]).await;
        ids.push((name, f["id"].as_str().unwrap().to_owned()));
    }
    // And one good file of each kind, to prove the failures are about the files.
    let pdf = s.upload(&key, "good.pdf", &good, &[]).await;
    for (name, id) in &ids {
        let f = s.settled(&key, id).await;
        assert_eq!(f["status"], "failed", "{name}: {f}");
        let reason = f["error"].as_str().unwrap_or_default();
        assert!(
            reason.contains(name),
            "{name}: the reason names the file: {reason}"
        );
        assert!(
            reason.len() > name.len() + 10,
            "{name}: a readable reason: {reason}"
        );
    }
    let bomb_reason = s.settled(&key, &ids[2].1).await["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        bomb_reason.contains("MiB") || bomb_reason.to_lowercase().contains("ratio"),
        "the zip bomb is named as such: {bomb_reason}"
    );
    let pdf = s.settled(&key, pdf["id"].as_str().unwrap()).await;
    assert_eq!(pdf["status"], "ready", "{pdf}");
    assert_eq!(pdf["pages"], 2);
    let hits = search(&s, &key, json!({"query": "walruses"})).await;
    assert_eq!(hits["hits"][0]["file_name"], "good.pdf");
    assert_eq!(hits["hits"][0]["citation"]["page"], 2, "{hits}");
    // A failed file can be ingested again on demand.
    let r = s
        .http
        .post(s.at(&format!("/api/v1/files/{}/reindex", ids[0].1)))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let f = s.settled(&key, &ids[0].1).await;
    assert_eq!(f["status"], "failed");
    s.stop().await;
}

#[tokio::test]
async fn every_format_is_searchable_with_citations_that_point_at_the_text() {
    let s = TestServer::start().await;
    let key = s.admin_key.clone();
    let html = "<html><head><title>T</title><style>.x{color:red}</style><script>var hidden='zebra';</script></head>\
                <body><h1>Field notes</h1><p>The narwhal &amp; the beluga share the Arctic.</p></body></html>";
    let docx = docx(&docx_body(&[
        ("Quarterly review", Some("Heading1")),
        ("Revenue from pelican tours grew.", None),
    ]));
    let files: Vec<(&str, Vec<u8>, &str)> = vec![
        ("guide.md", GUIDE_MD.as_bytes().to_vec(), "quokka"),
        (
            "notes.txt",
            b"Remember the capybara meeting on Tuesday.".to_vec(),
            "capybara",
        ),
        ("page.html", html.as_bytes().to_vec(), "narwhal"),
        (
            "data.csv",
            b"animal,count\nokapi,3\nlemur,5\n".to_vec(),
            "okapi",
        ),
        (
            "conf.json",
            br#"{"mascot": "axolotl", "legs": 4}"#.to_vec(),
            "axolotl",
        ),
        (
            "main.rs",
            b"// The tapir module\nfn tapir() -> u32 { 42 }\n".to_vec(),
            "tapir",
        ),
        ("review.docx", docx, "pelican"),
    ];
    let mut ids = std::collections::HashMap::new();
    for (name, bytes, _) in &files {
        let f = s.upload(&key, name, bytes, &[]).await;
        ids.insert(*name, f["id"].as_str().unwrap().to_owned());
    }
    for (name, _, word) in &files {
        let f = s.settled(&key, &ids[name]).await;
        assert_eq!(f["status"], "ready", "{name}: {f}");
        let v = search(&s, &key, json!({"query": word})).await;
        let hit = &v["hits"][0];
        assert_eq!(hit["file_name"], *name, "searching {word}: {v}");
        assert!(
            hit["text"].as_str().unwrap().to_lowercase().contains(word),
            "{name}: {hit}"
        );
    }
    // Script and style contents are not text.
    let v = search(&s, &key, json!({"query": "zebra"})).await;
    assert_eq!(v["hits"], json!([]));
    // For text formats the citation's character offsets cut the hit out of the file itself.
    let v = search(&s, &key, json!({"query": "snapshot consistent backup"})).await;
    let hit = &v["hits"][0];
    let (a, b) = (
        hit["citation"]["start_char"].as_u64().unwrap() as usize,
        hit["citation"]["end_char"].as_u64().unwrap() as usize,
    );
    let cited: String = GUIDE_MD.chars().skip(a).take(b - a).collect();
    assert_eq!(cited, hit["text"].as_str().unwrap());
    assert_eq!(
        hit["citation"]["heading"], "Zentoria guide > Backups",
        "{hit}"
    );
    // Filters narrow the search; bad requests are refused.
    let v = search(
        &s,
        &key,
        json!({"query": "capybara okapi", "filters": {"types": ["csv"]}}),
    )
    .await;
    assert_eq!(v["hits"].as_array().unwrap().len(), 1);
    assert_eq!(v["hits"][0]["file_name"], "data.csv");
    let v = search(&s, &key, json!({"query": "capybara okapi", "top_k": 1})).await;
    assert_eq!(v["hits"].as_array().unwrap().len(), 1);
    for bad in [
        json!({"query": ""}),
        json!({"query": "x", "top_k": 0}),
        json!({"query": "x", "top_k": 1000}),
        json!({"query": "x", "filters": {"types": ["exe"]}}),
        json!({"query": "x", "mode": "psychic"}),
        json!({"query": "x", "colour": "red"}),
    ] {
        let r = s.post("/api/v1/search", Some(&key), &bad).await;
        assert!(
            r.status() == 400 || r.status() == 422,
            "{bad}: {}",
            r.status()
        );
    }
    let r = s
        .post(
            "/api/v1/search",
            Some(&key),
            &json!({"query": "x", "mode": "semantic"}),
        )
        .await;
    let body = assert_error(r, 400, "invalid_request").await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("embedder"),
        "{body}"
    );
    s.stop().await;
}

#[tokio::test]
async fn collections_tags_and_visibility() {
    let s = TestServer::start().await;
    let alice = s.user("alice", Role::User).await;
    let bob = s.user("bob", Role::User).await;
    let ka = s.key_for(&alice, "files:read,files:write").await;
    let kb = s.key_for(&bob, "files:read,files:write").await;
    let read_only = s.key_for(&alice, "files:read").await;

    // Uploading into a collection by name creates it.
    let f1 = s
        .upload(
            &ka,
            "a.txt",
            b"the heron nests by the river",
            &[("collection", "Birds")],
        )
        .await;
    let f2 = s.upload(&ka, "b.txt", b"the heron eats fish", &[]).await;
    let fb = s.upload(&kb, "c.txt", b"bob's heron diary", &[]).await;
    for (k, f) in [(&ka, &f1), (&ka, &f2), (&kb, &fb)] {
        assert_eq!(
            s.settled(k, f["id"].as_str().unwrap()).await["status"],
            "ready"
        );
    }
    let cols: Value = s
        .get("/api/v1/collections", Some(&ka))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cols[0]["name"], "Birds");
    assert_eq!(cols[0]["file_count"], 1);
    let birds = cols[0]["id"].as_str().unwrap().to_owned();
    let r = s
        .post("/api/v1/collections", Some(&ka), &json!({"name": "birds"}))
        .await;
    assert_error(r, 409, "conflict").await;
    let r = s
        .post(
            "/api/v1/collections",
            Some(&read_only),
            &json!({"name": "x"}),
        )
        .await;
    assert_error(r, 403, "forbidden").await;

    // Each user sees only their own files, in lists and in search.
    let v = search(&s, &ka, json!({"query": "heron"})).await;
    assert_eq!(v["hits"].as_array().unwrap().len(), 2, "{v}");
    let v = search(&s, &kb, json!({"query": "heron"})).await;
    assert_eq!(v["hits"].as_array().unwrap().len(), 1);
    assert_error(
        s.get(
            &format!("/api/v1/files/{}", f1["id"].as_str().unwrap()),
            Some(&kb),
        )
        .await,
        404,
        "not_found",
    )
    .await;
    let v = search(&s, &ka, json!({"query": "heron", "collection": "Birds"})).await;
    assert_eq!(v["hits"].as_array().unwrap().len(), 1);
    assert_eq!(v["hits"][0]["file_id"], f1["id"]);
    // The admin sees everyone's.
    let v = search(&s, &s.admin_key, json!({"query": "heron"})).await;
    assert_eq!(v["hits"].as_array().unwrap().len(), 3);

    // Rename, retag and move; search filters follow at once.
    let id2 = f2["id"].as_str().unwrap();
    let r = s
        .http
        .patch(s.at(&format!("/api/v1/files/{id2}")))
        .header("X-API-Key", &ka)
        .json(&json!({"name": "heron-food.txt", "tags": ["diet"], "collection": birds}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let f: Value = r.json().await.unwrap();
    assert_eq!(f["name"], "heron-food.txt");
    assert_eq!(f["tags"], json!(["diet"]));
    assert_eq!(f["collection_id"], birds.as_str());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let v = search(
            &s,
            &ka,
            json!({"query": "heron", "filters": {"tags": ["diet"]}}),
        )
        .await;
        if v["hits"].as_array().unwrap().len() == 1 {
            assert_eq!(v["hits"][0]["file_name"], "heron-food.txt");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the tag filter never applied: {v}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let r = s
        .http
        .patch(s.at(&format!("/api/v1/files/{id2}")))
        .header("X-API-Key", &ka)
        .json(&json!({"owner": "bob"}))
        .send()
        .await
        .unwrap();
    assert!(r.status() == 400 || r.status() == 422);

    // Deleting the collection deletes its files.
    let r = s
        .http
        .delete(s.at("/api/v1/collections/Birds"))
        .header("X-API-Key", &ka)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["files_deleted"], 2);
    let page: Value = s
        .get("/api/v1/files", Some(&ka))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 0);
    let v = search(&s, &ka, json!({"query": "heron"})).await;
    assert_eq!(v["hits"], json!([]));
    let v = search(&s, &kb, json!({"query": "heron"})).await;
    assert_eq!(
        v["hits"].as_array().unwrap().len(),
        1,
        "bob's file is untouched"
    );
    s.stop().await;
}
