//! The IM's side of a holder's key rotation or account closing (see `crate::lifecycle`).

use halfveil_ledger::{AccountId, Op, RejectCode};
use libp2p::PeerId;
use tracing::{info, warn};

use super::{error_response, AdminOp, AdminWaiter, ImRole, ADMIN_QUEUE_MAX};
use crate::lifecycle::check_lifecycle;
use crate::network::Reply;
use crate::protocol::sender_bank;
use crate::service::{Role, Service};

impl ImRole {
    /// Whether a rotation or closing of `account` waits for a block.
    fn lifecycle_queued(&self, account: &AccountId) -> bool {
        self.admin.iter().any(|queued| match &queued.op {
            Op::RotateKey(rotate) => rotate.account == *account,
            Op::CloseAccount(close) => close.account == *account,
            _ => false,
        })
    }
}

impl Service {
    /// The IM: from the account's own bank, holding now, room in the queue; then into the
    /// next block, and the bank hears once it is written.
    pub async fn im_on_lifecycle(&mut self, peer: PeerId, op: Op, channel: Reply) {
        if let Some(not_leading) = self.im_not_leading() {
            self.net.respond(channel, not_leading).await;
            return;
        }
        let checked = self.im_check_lifecycle(&peer, &op);
        let Role::IdentityManager(im) = &mut self.role else {
            return;
        };
        match checked {
            Ok(account) if im.admin.len() < ADMIN_QUEUE_MAX => {
                info!(%account, kind = op.kind(), "account change queued");
                im.admin.push_back(AdminOp {
                    op,
                    waiter: AdminWaiter::Peer(channel, account),
                });
            }
            Ok(_) => {
                let busy =
                    error_response(RejectCode::Overloaded, "too many operations waiting; retry");
                self.net.respond(channel, busy).await;
            }
            Err(why) => {
                warn!(%why, "account change refused");
                let refused = error_response(RejectCode::Invalid, why);
                self.net.respond(channel, refused).await;
            }
        }
    }

    fn im_check_lifecycle(&self, peer: &PeerId, op: &Op) -> Result<AccountId, String> {
        let account = check_lifecycle(&self.params, &self.state, op)?;
        let bank = sender_bank(self.bank_peers(), peer).ok_or("only banks change accounts")?;
        let home = self.state.account(&account).map(|held| held.bank);
        if home != Some(bank) {
            return Err(format!(
                "{account} is not an account of the bank that relays it"
            ));
        }
        let queued =
            matches!(&self.role, Role::IdentityManager(im) if im.lifecycle_queued(&account));
        if queued {
            return Err(format!("a change of {account} already waits for a block"));
        }
        Ok(account)
    }
}
