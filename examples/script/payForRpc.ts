/**
 * A backend script that pays for JSON-RPC with mppHttp's defaults. No provider is given, so:
 * - the key comes from `TEMPO_PRIVATE_KEY`, else from `$TEMPO_HOME/wallet/keys.toml`
 *   (`TEMPO_HOME` defaults to `~/.tempo`);
 * - where the server offers a session, one payment channel is opened and kept in
 *   `$TEMPO_HOME/wallet/channels.db`, so the next run pays with a voucher on the same channel
 *   instead of depositing again; where it offers only a charge, each request pays one;
 * - no payment may cost more than `defaultMaxAmount` (1 USD), and a channel holds at most
 *   `defaultMaxDeposit` (1 USD).
 *
 *   PAID_RPC_URL=https://paid-rpc.example.com TEMPO_PRIVATE_KEY=0x… npx tsx examples/script/payForRpc.ts
 *
 * It pays on Tempo mainnet; with `LOCALNET_RPC_URL` (the localnet's own, unpaid RPC), on a Tempo
 * localnet. `npm run example:script` runs it twice against a localnet and a paid RPC of its own.
 */
import { createPublicClient, formatUnits } from 'viem'
import { tempo } from 'viem/chains'
import { mppHttp } from 'viem-mpp'
import { defineLocalnetChain } from 'viem-mpp/testing'

const { PAID_RPC_URL: paidUrl, LOCALNET_RPC_URL: localnetUrl } = process.env
if (!paidUrl) {
  console.error('Set PAID_RPC_URL to the paid JSON-RPC endpoint.')
  process.exit(1)
}

// Payments are prepared through the chain's own RPC, which is not paid.
const chain = localnetUrl ? defineLocalnetChain({ id: 1337, rpcUrl: localnetUrl }) : tempo

/** An amount of a USD TIP-20 token such as pathUSD (6 decimals, as fees are), in dollars. */
const usd = (amount: bigint) => `$${formatUnits(amount, 6)}`

let spent = 0n
let deposited = 0n
let payments = 0
const client = createPublicClient({
  chain,
  transport: mppHttp(paidUrl, {
    // At most $0.20 in one run: amounts and their most fees (opening a channel may cost up to
    // about $0.05 in fees). Deposits are not spent: closing the channel refunds what is left.
    budget: 200_000n,
    onReceipt: ({ quote }) => {
      payments++
      spent += quote.amount
      deposited += quote.deposit
      const deposit = quote.deposit ? `, deposited ${usd(quote.deposit)}` : ''
      console.log(`paid ${usd(quote.amount)} by ${quote.method}/${quote.intent}${deposit}`)
    },
  }),
})

console.log(`block number: ${await client.getBlockNumber()}`)
console.log(`chain id: ${await client.getChainId()}`)
console.log(`spent ${usd(spent)} in ${payments} payments, deposited ${usd(deposited)}`)
