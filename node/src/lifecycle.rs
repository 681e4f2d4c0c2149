//! A holder's key rotation and account closing: the payer's bank checks the op and relays it
//! to the IM, which checks it again and puts it in a block (`RotateKey`, `CloseAccount`).
//! Both check it as the block will, with `apply` itself over a one-op block, so a refusal
//! comes at once and names the rule.

use halfveil_ledger::{apply, AccountId, ChainParams, Height, Op, State, TimeMs};
use tokio::sync::oneshot;

use crate::bank::relay_to_leader;
use crate::clock::now_ms;
use crate::protocol::{Request, Response};
use crate::rpc::{codes, RpcFailure};
use crate::service::Service;

/// The account `op` changes, if it is a rotation or a closing that the chain would take now.
pub fn check_lifecycle(params: &ChainParams, state: &State, op: &Op) -> Result<AccountId, String> {
    let account = match op {
        Op::RotateKey(rotate) => rotate.account,
        Op::CloseAccount(close) => close.account,
        _ => return Err("only a key rotation or an account closing".into()),
    };
    let height = state
        .height
        .next()
        .ok_or_else(|| "the chain is at its last height".to_owned())?;
    let time = TimeMs(now_ms().0.max(state.time.0 + 1));
    apply::execute(params, state, height, time, &[], std::slice::from_ref(op))
        .map_err(|error| error.violation.to_string())?;
    Ok(account)
}

impl Service {
    /// A payer's bank: the account must be its own and the op must hold; then it goes to
    /// the IM, and the payer hears the height once it is committed.
    pub fn bank_lifecycle(
        &mut self,
        op: Op,
        reply: oneshot::Sender<Result<(AccountId, Height), RpcFailure>>,
    ) {
        let refuse = |code, message: String| RpcFailure::new(code, message);
        let checked = check_lifecycle(&self.params, &self.state, &op)
            .map_err(|why| refuse(codes::REFUSED, why))
            .and_then(|account| match self.bank() {
                Some(bank) if bank.core.account(&account).is_some() => Ok(account),
                Some(_) => Err(refuse(
                    codes::REFUSED,
                    format!("{account} is not an account of this bank"),
                )),
                None => Err(refuse(
                    codes::WRONG_ROLE,
                    "accounts are changed at their bank".into(),
                )),
            });
        let account = match checked {
            Ok(account) => account,
            Err(failure) => {
                let _ = reply.send(Err(failure));
                return;
            }
        };
        let (net, replicas, first) = (
            self.net.clone(),
            self.genesis.im_peer_ids.clone(),
            self.im_target,
        );
        tokio::spawn(async move {
            let answer =
                match relay_to_leader(&net, &replicas, first, Request::Lifecycle(Box::new(op)))
                    .await
                {
                    Ok(Response::Opened {
                        account: changed,
                        height,
                    }) if changed == account => Ok((account, height)),
                    Ok(Response::Error { message, .. }) => Err(refuse(codes::REFUSED, message)),
                    Ok(_) => Err(refuse(
                        codes::INTERNAL,
                        "unexpected answer from the identity manager".into(),
                    )),
                    Err(error) => Err(refuse(
                        codes::INTERNAL,
                        format!("cannot reach the identity manager: {error}"),
                    )),
                };
            let _ = reply.send(answer);
        });
    }
}
