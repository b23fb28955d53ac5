import type { Client } from 'viem'
import { Addresses } from 'viem/tempo'
import artifact from '../contracts/TIP20ChannelReserve.json' with { type: 'json' }

/** Storage slot of the reserve's `mapping(address sender => bytes32 expiringNonceHash)`. */
export const contextHashSlot = BigInt(artifact.storageLayout.contextHashSlot)

/** Installs the Solidity TIP-1034 channel reserve at the precompile's canonical address. */
export async function installReserve(client: Client) {
  await client.request({
    method: 'anvil_setCode' as never,
    params: [Addresses.tip20ChannelReserve, artifact.deployedBytecode] as never,
  })
}
