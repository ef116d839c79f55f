use std::io::Cursor;

use anyhow::bail;
use nfs3_types::rpc::{
    accept_stat_data, accepted_reply, auth_stat, call_body, msg_body, opaque_auth,
    rejected_reply, reply_body, rpc_msg,
};
use nfs3_types::xdr_codec::{Pack, Unpack, Void};

/// The largest RPC record accepted (pxe-sidecar patch).
pub const MAX_RECORD: usize = 1024 * 1024 + 64 * 1024;

/// An RPC record. pxe-sidecar patch: a reply may end with a `tail` (READ's
/// file data) that is written to the socket from the buffer it was read
/// into instead of being copied into the packed reply; `pad` zero bytes
/// follow it (XDR rounds opaque data up to 4 bytes, RFC 4506 §4.10).
#[derive(Debug)]
pub struct CompleteRpcMessage {
    head: Vec<u8>,
    tail: Vec<u8>,
    pad: usize,
}

impl CompleteRpcMessage {
    /// pxe-sidecar patch: a record reassembled by the connection loop.
    pub(crate) const fn from_record(record: Vec<u8>) -> Self {
        Self {
            head: record,
            tail: Vec::new(),
            pad: 0,
        }
    }

    /// The packed bytes, the tail and its padding length.
    pub(crate) fn into_parts(self) -> (Vec<u8>, Vec<u8>, usize) {
        (self.head, self.tail, self.pad)
    }
}

pub struct IncomingRpcMessage {
    xid: u32,
    body: call_body<'static>,
    data: Option<Vec<u8>>,
    message_start: usize, // offset of the start of the message in the data buffer
}

impl TryFrom<CompleteRpcMessage> for IncomingRpcMessage {
    type Error = anyhow::Error;

    fn try_from(packed: CompleteRpcMessage) -> Result<Self, Self::Error> {
        let packed = packed.head;
        let (rpc, pos) = match rpc_msg::unpack(&mut Cursor::new(&packed)) {
            Ok(ok) => ok,
            Err(err) => {
                bail!("Failed to unpack RPC message: {err}");
            }
        };

        let xid = rpc.xid;
        let body = match rpc.body {
            msg_body::CALL(call) => call,
            msg_body::REPLY(_) => {
                bail!("Expected a CALL message, got REPLY. XID: {xid}");
            }
        };

        Ok(Self {
            xid,
            body,
            data: Some(packed),
            message_start: pos,
        })
    }
}

impl IncomingRpcMessage {
    pub const fn xid(&self) -> u32 {
        self.xid
    }
    pub const fn body(&self) -> &call_body<'static> {
        &self.body
    }

    pub const fn take_data(&mut self) -> Cursor<Vec<u8>> {
        let data = self.data.take().expect("Data already taken");
        let mut cursor = Cursor::new(data);
        cursor.set_position(self.message_start as u64);
        cursor
    }

    fn success(&self) -> rpc_msg<'static, 'static> {
        rpc_msg {
            xid: self.xid,
            body: msg_body::REPLY(reply_body::MSG_ACCEPTED(accepted_reply {
                verf: opaque_auth::default(),
                reply_data: accept_stat_data::SUCCESS,
            })),
        }
    }

    pub fn into_success_reply<T>(self, message: &T) -> anyhow::Result<HandleResult>
    where
        T: Pack + 'static,
    {
        pack(&self.success(), message).map(HandleResult::Reply)
    }

    /// pxe-sidecar patch: a success reply whose packed `message` ends with
    /// an empty variable-length opaque that stands for `tail`: its length
    /// word is set to the tail's length and the tail goes out after it.
    pub fn into_success_reply_with_tail<T>(
        self,
        message: &T,
        tail: Vec<u8>,
    ) -> anyhow::Result<HandleResult>
    where
        T: Pack + 'static,
    {
        let mut reply = pack(&self.success(), message)?;
        if tail.is_empty() {
            return Ok(HandleResult::Reply(reply));
        }
        let len = u32::try_from(tail.len())?;
        let at = reply
            .head
            .len()
            .checked_sub(4)
            .filter(|&at| reply.head[at..] == [0; 4])
            .ok_or_else(|| anyhow::anyhow!("the reply does not end with an empty opaque"))?;
        reply.head[at..].copy_from_slice(&len.to_be_bytes());
        reply.pad = (4 - tail.len() % 4) % 4;
        reply.tail = tail;
        Ok(HandleResult::Reply(reply))
    }

    pub fn into_rpc_mismatch(self) -> anyhow::Result<HandleResult> {
        use nfs3_types::rpc::RPC_VERSION_2;

        let reply =
            reply_body::MSG_DENIED(rejected_reply::rpc_mismatch(RPC_VERSION_2, RPC_VERSION_2));

        let rpc = rpc_msg {
            xid: self.xid,
            body: msg_body::REPLY(reply),
        };
        pack(&rpc, &Void).map(HandleResult::Reply)
    }

    pub fn into_auth_error(self, stat: auth_stat) -> anyhow::Result<HandleResult> {
        let rpc = rpc_msg {
            xid: self.xid,
            body: msg_body::REPLY(reply_body::MSG_DENIED(rejected_reply::auth_error(stat))),
        };
        pack(&rpc, &Void).map(HandleResult::Reply)
    }

    pub fn into_error_reply(self, err: accept_stat_data) -> anyhow::Result<HandleResult> {
        let rpc = rpc_msg {
            xid: self.xid,
            body: msg_body::REPLY(reply_body::MSG_ACCEPTED(accepted_reply {
                verf: opaque_auth::default(),
                reply_data: err,
            })),
        };
        pack(&rpc, &Void).map(HandleResult::Reply)
    }
}

pub enum HandleResult {
    Reply(CompleteRpcMessage),
    NoReply,
}

fn pack<T>(rpc: &rpc_msg, message: &T) -> anyhow::Result<CompleteRpcMessage>
where
    T: Pack + 'static,
{
    let size = rpc
        .packed_size()
        .checked_add(message.packed_size())
        .expect("Failed to calculate size");

    let mut cursor = Cursor::new(Vec::with_capacity(size));
    rpc.pack(&mut cursor)?;
    message.pack(&mut cursor)?;
    Ok(CompleteRpcMessage::from_record(cursor.into_inner()))
}
