//! Request tallies: what one copy (or one range) cost, by S3 operation.
//!
//! In the data flow: every request a copy path sends is first counted into the copy's [`Tally`]
//! (retries included, also when the copy fails); the totals come back in
//! [`CopyResult::requests`](super::CopyResult::requests), the range summaries and the dry-run
//! plans ([`CopyPlan::requests`](super::CopyPlan::requests)).

use std::sync::Mutex;

/// Requests made (or, in a dry run, that would be made), by S3 operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestCounts {
    pub list: u64,
    pub head: u64,
    pub get_tags: u64,
    pub get: u64,
    pub put: u64,
    pub create_multipart: u64,
    pub upload_part: u64,
    pub complete_multipart: u64,
    pub abort_multipart: u64,
    pub copy: u64,
    pub upload_part_copy: u64,
    pub delete: u64,
}

impl RequestCounts {
    pub fn total(&self) -> u64 {
        let c = self.classes();
        c.iter().map(|(_, n)| n).sum()
    }
    /// Collapsed into LIST / HEAD / GET (incl. GetObjectTagging) / PUT (PutObject, multipart
    /// create/part/complete/abort) / COPY (CopyObject, UploadPartCopy) / DELETE.
    pub fn classes(&self) -> [(&'static str, u64); 6] {
        [
            ("LIST", self.list),
            ("HEAD", self.head),
            ("GET", self.get + self.get_tags),
            (
                "PUT",
                self.put + self.create_multipart + self.upload_part + self.complete_multipart + self.abort_multipart,
            ),
            ("COPY", self.copy + self.upload_part_copy),
            ("DELETE", self.delete),
        ]
    }
}

impl std::ops::AddAssign for RequestCounts {
    fn add_assign(&mut self, o: RequestCounts) {
        self.list += o.list;
        self.head += o.head;
        self.get_tags += o.get_tags;
        self.get += o.get;
        self.put += o.put;
        self.create_multipart += o.create_multipart;
        self.upload_part += o.upload_part;
        self.complete_multipart += o.complete_multipart;
        self.abort_multipart += o.abort_multipart;
        self.copy += o.copy;
        self.upload_part_copy += o.upload_part_copy;
        self.delete += o.delete;
    }
}

/// A shared request counter (several parts update it concurrently).
#[derive(Debug, Default)]
pub struct Tally(Mutex<RequestCounts>);

impl Tally {
    pub fn add(&self, f: impl FnOnce(&mut RequestCounts)) {
        f(&mut self.0.lock().unwrap())
    }
    pub fn get(&self) -> RequestCounts {
        *self.0.lock().unwrap()
    }
}
