use baton::{
    db::{self, blobs::BlobClaim, files::NewFile},
    domain::{FileId, JobStatus, Sha256Hex, TimelineKind},
    storage::StoreName,
};
use sqlx::PgPool;

use crate::helpers::{job, owner};

fn digest(byte: u8) -> Sha256Hex {
    Sha256Hex::from_digest(&[byte; 32])
}

const MD5: &str = "0123456789abcdef0123456789abcdef";

#[sqlx::test(migrations = "../sql")]
async fn the_first_claim_inserts_and_later_ones_find_the_row(db: PgPool) {
    let (owner, sha256) = (owner(), digest(1));
    let mut tx = db.begin().await.unwrap();
    assert_eq!(
        db::blobs::claim(&mut tx, &owner, &sha256, 10, MD5, &StoreName::volume())
            .await
            .unwrap(),
        BlobClaim::Inserted
    );
    tx.commit().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    assert_eq!(
        db::blobs::claim(&mut tx, &owner, &sha256, 10, MD5, &StoreName::volume())
            .await
            .unwrap(),
        BlobClaim::Existing(StoreName::volume())
    );
}

#[sqlx::test(migrations = "../sql")]
async fn a_blob_no_file_refers_to_is_unreferenced_until_a_file_does(db: PgPool) {
    let (owner, sha256) = (owner(), digest(2));
    let mut conn = db.acquire().await.unwrap();
    db::blobs::claim(&mut conn, &owner, &sha256, 10, MD5, &StoreName::volume())
        .await
        .unwrap();
    let page = db::blobs::unreferenced(&db, ("", ""), 10).await.unwrap();
    assert_eq!(
        page.iter().map(|b| b.sha256.as_str()).collect::<Vec<_>>(),
        [sha256.as_str()]
    );
    assert!(!db::blobs::is_referenced(&mut conn, &owner, &sha256).await.unwrap());

    let job = job(&db, "m", None).await;
    let file = NewFile {
        id: FileId::new(),
        job_id: job.id,
        owner: &owner,
        position: 0,
        name: "image",
        filename: "a.png",
        sha256: &sha256,
        content_type: "image/png",
    };
    db::files::insert(&mut conn, &file).await.unwrap();
    assert!(db::blobs::is_referenced(&mut conn, &owner, &sha256).await.unwrap());
    assert!(db::blobs::unreferenced(&db, ("", ""), 10).await.unwrap().is_empty());
    let files = db::files::of_jobs(&db, &[job.id]).await.unwrap();
    assert_eq!((files[0].id, files[0].size), (file.id, 10));
    assert_eq!(
        db::files::get(&db, &owner, file.id).await.unwrap().unwrap().job_id,
        job.id
    );
}

#[sqlx::test(migrations = "../sql")]
async fn a_missing_blob_is_marked_once_and_its_unfinished_jobs_are_told(db: PgPool) {
    let (owner, sha256) = (owner(), digest(3));
    let mut conn = db.acquire().await.unwrap();
    db::blobs::claim(&mut conn, &owner, &sha256, 10, MD5, &StoreName::volume())
        .await
        .unwrap();
    let (queued, finished) = (job(&db, "m", None).await, job(&db, "m", None).await);
    for (position, job) in [&queued, &finished].into_iter().enumerate() {
        let file = NewFile {
            id: FileId::new(),
            job_id: job.id,
            owner: &owner,
            position: i32::try_from(position).unwrap(),
            name: "image",
            filename: "a.png",
            sha256: &sha256,
            content_type: "image/png",
        };
        db::files::insert(&mut conn, &file).await.unwrap();
    }
    db::jobs::finish(&mut conn, finished.id, JobStatus::Cancelled, None, None, None)
        .await
        .unwrap();

    assert!(db::blobs::mark_missing(&mut conn, &owner, &sha256).await.unwrap());
    assert!(!db::blobs::mark_missing(&mut conn, &owner, &sha256).await.unwrap());
    assert_eq!(db::blobs::count_missing(&db).await.unwrap(), 1);
    assert_eq!(
        db::timeline::record_file_missing(&mut conn, &owner, &sha256)
            .await
            .unwrap(),
        1
    );
    let kinds: Vec<_> = db::timeline::list(&db, queued.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, [TimelineKind::FileMissing]);

    db::blobs::clear_missing(&db, &owner, &sha256).await.unwrap();
    assert_eq!(db::blobs::count_missing(&db).await.unwrap(), 0);
    let page = db::blobs::page_after(&db, ("", ""), 10).await.unwrap();
    assert!(!page[0].missing);
}

#[sqlx::test(migrations = "../sql")]
async fn a_locked_blob_is_deleted_and_known_keys_are_found(db: PgPool) {
    let (owner, kept, deleted) = (owner(), digest(4), digest(5));
    let mut conn = db.acquire().await.unwrap();
    for sha256 in [&kept, &deleted] {
        db::blobs::claim(&mut conn, &owner, sha256, 7, MD5, &StoreName::volume())
            .await
            .unwrap();
    }
    let mut tx = db.begin().await.unwrap();
    assert!(db::blobs::lock(&mut tx, &owner, &deleted).await.unwrap().is_some());
    db::blobs::delete(&mut tx, &owner, &deleted).await.unwrap();
    tx.commit().await.unwrap();

    let owners = vec![owner.as_str().to_owned(); 2];
    let digests = vec![kept.to_string(), deleted.to_string()];
    let known = db::blobs::existing(&db, &owners, &digests).await.unwrap();
    assert_eq!(known, [(owner.as_str().to_owned(), kept.to_string())]);

    let mut tx = db.begin().await.unwrap();
    assert!(db::blobs::reserve_key(&mut tx, &owner, &deleted, 100).await.unwrap());
    assert!(!db::blobs::reserve_key(&mut tx, &owner, &kept, 100).await.unwrap());
}
