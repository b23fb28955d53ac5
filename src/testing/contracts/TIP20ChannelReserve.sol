// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title TIP-20 channel reserve interface (TIP-1034)
/// @notice External surface of the TIP-1034 channel reserve. It is kept ABI-identical to
///         `Abis.tip20ChannelReserve` in `viem/tempo` (checked by `test/unit/contracts.test.ts`),
///         so every client that speaks to the real precompile speaks to this contract unchanged.
interface ITIP20ChannelReserve {
    /// @notice Immutable identity of a channel. Never stored: callers pass it in calldata and the
    ///         reserve recomputes the channel id from it.
    struct ChannelDescriptor {
        address payer;
        address payee;
        address operator;
        address token;
        bytes32 salt;
        address authorizedSigner;
        bytes32 expiringNonceHash;
    }

    /// @notice Mutable channel state; on chain it lives packed in one storage word.
    struct ChannelState {
        uint96 settled;
        uint96 deposit;
        uint32 closeRequestedAt;
    }

    /// @notice Descriptor plus state, as returned by `getChannel`.
    struct Channel {
        ChannelDescriptor descriptor;
        ChannelState state;
    }

    event ChannelOpened(
        bytes32 indexed channelId,
        address indexed payer,
        address indexed payee,
        address operator,
        address token,
        address authorizedSigner,
        bytes32 salt,
        bytes32 expiringNonceHash,
        uint96 deposit
    );

    event Settled(
        bytes32 indexed channelId,
        address indexed payer,
        address indexed payee,
        uint96 cumulativeAmount,
        uint96 deltaPaid,
        uint96 newSettled
    );

    event TopUp(
        bytes32 indexed channelId,
        address indexed payer,
        address indexed payee,
        uint96 additionalDeposit,
        uint96 newDeposit
    );

    event CloseRequested(
        bytes32 indexed channelId, address indexed payer, address indexed payee, uint256 closeGraceEnd
    );

    event ChannelClosed(
        bytes32 indexed channelId,
        address indexed payer,
        address indexed payee,
        uint96 settledToPayee,
        uint96 refundedToPayer
    );

    event CloseRequestCancelled(bytes32 indexed channelId, address indexed payer, address indexed payee);

    /// @notice The channel id has live state, or was already opened earlier in this transaction.
    error ChannelAlreadyExists();
    /// @notice The descriptor resolves to a channel id with no state.
    error ChannelNotFound();
    /// @notice Only the descriptor's payer may call this.
    error NotPayer();
    /// @notice Only the payee, or a nonzero operator, may call this.
    error NotPayeeOrOperator();
    /// @notice The payee is the zero address or a TIP-20 token address.
    error InvalidPayee();
    /// @notice `open` was called with a zero deposit.
    error ZeroDeposit();
    /// @notice No context hash is available for the enclosing transaction.
    error ExpiringNonceHashNotSet();
    /// @notice The voucher signature is malformed, a keychain wrapper, or not by the expected signer.
    error InvalidSignature();
    /// @notice The settled or captured amount exceeds the channel deposit.
    error AmountExceedsDeposit();
    /// @notice `settle` must strictly increase the settled amount.
    error AmountNotIncreasing();
    /// @notice `close` needs `settled <= captureAmount <= cumulativeAmount`.
    error CaptureAmountInvalid();
    /// @notice `withdraw` needs a close request whose grace period has elapsed.
    error CloseNotReady();
    /// @notice A top-up would push the deposit past `type(uint96).max`.
    error DepositOverflow();
    /// @notice The account's root key was retired (it became a configurable account). Declared for
    ///         ABI parity with the precompile; this contract never raises it (there are no
    ///         configurable accounts at T4, and verifier failures surface as `InvalidSignature`).
    error RootKeyRetired(address account);

    function CLOSE_GRACE_PERIOD() external view returns (uint64);

    function VOUCHER_TYPEHASH() external view returns (bytes32);

    function open(
        address payee,
        address operator,
        address token,
        uint96 deposit,
        bytes32 salt,
        address authorizedSigner
    ) external returns (bytes32 channelId);

    function settle(ChannelDescriptor calldata descriptor, uint96 cumulativeAmount, bytes calldata signature)
        external;

    function topUp(ChannelDescriptor calldata descriptor, uint96 additionalDeposit) external;

    function close(
        ChannelDescriptor calldata descriptor,
        uint96 cumulativeAmount,
        uint96 captureAmount,
        bytes calldata signature
    ) external;

    function requestClose(ChannelDescriptor calldata descriptor) external;

    function withdraw(ChannelDescriptor calldata descriptor) external;

    function getChannel(ChannelDescriptor calldata descriptor) external view returns (Channel memory);

    function getChannelState(bytes32 channelId) external view returns (ChannelState memory);

    function getChannelStatesBatch(bytes32[] calldata channelIds)
        external
        view
        returns (ChannelState[] memory);

    function computeChannelId(
        address payer,
        address payee,
        address operator,
        address token,
        bytes32 salt,
        address authorizedSigner,
        bytes32 expiringNonceHash
    ) external view returns (bytes32);

    function getVoucherDigest(bytes32 channelId, uint96 cumulativeAmount) external view returns (bytes32);

    function domainSeparator() external view returns (bytes32);

    function storageCredits(address payer) external view returns (uint64 credits);
}

/// @title TIP20ChannelReserve: a contract stand-in for the TIP-1034 precompile
/// @notice Runs the TIP-1034 channel model (open, settle, topUp, requestClose, close, withdraw)
///         as ordinary EVM code, so a local anvil node (`--network tempo --hardfork t4`), which has
///         no such precompile, can host it with `anvil_setCode` at the canonical address
///         0x4D50500000000000000000000000000000000000. Channel ids, the EIP-712 domain and the
///         voucher digest use `address(this)`, so they equal the real precompile's (and ox's
///         `Channel.computeId` / `Channel.getVoucherSignPayload`) only when installed there.
///
/// @dev How this differs from the real precompile, and why:
///      1. Context hash. The precompile reads the enclosing transaction's replay-protected context
///         hash (`keccak256(encodeForSigning || sender)`) from the execution context; EVM code
///         cannot see the raw transaction. Here a JSON-RPC shim computes it and writes it with
///         `anvil_setStorageAt` into `_openContextHash[sender]`, the mapping at storage slot 0
///         (entry slot = keccak256(abi.encode(sender, uint256(0)))), keyed by `tx.origin`, before
///         the transaction runs. The first `open` of a transaction moves it into transient
///         storage and clears the persistent entry, so the value is transaction-scoped like the
///         precompile's and a stale hash can never be reused by a later transaction.
///      2. Funding. The precompile moves funds with `systemTransferFrom` (no approval). Here
///         `open`/`topUp` call the token's ERC-20 `transferFrom`, so the payer needs an allowance
///         for this address; the shim or harness grants it out of band.
///      3. No TIP-403 policy checks on the logical payer -> payee path (the precompile checks that
///         the payee may receive on open/topUp and that the payer may still send on payouts). The
///         token's own transfer rules still apply to the actual transfers.
///      4. No payment-lane classification; that is a node concern, not contract code.
///      5. `storageCredits` always returns 0: there are no storage credits (a later-hardfork
///         precompile feature) in this contract.
///      6. Real bytecode: `eth_getCode` at the address returns this contract's code, whereas the
///         precompile shows a 0xef placeholder. Gas use is EVM gas, not precompile gas.
///      7. A token that is not an existing TIP-20 (no TIP-20 address prefix, or no code) is
///         rejected with TIP-20's `InvalidToken()` error selector, which is not part of this ABI.
contract TIP20ChannelReserve is ITIP20ChannelReserve {
    /// @notice Delay between a payer's `requestClose` and the earliest `withdraw`: 15 minutes.
    uint64 public constant override CLOSE_GRACE_PERIOD = 900;

    /// @notice EIP-712 type hash of `Voucher(bytes32 channelId,uint96 cumulativeAmount)`.
    bytes32 public constant override VOUCHER_TYPEHASH =
        keccak256("Voucher(bytes32 channelId,uint96 cumulativeAmount)");

    bytes32 private constant _EIP712_DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant _NAME_HASH = keccak256("TIP20 Channel Reserve");
    bytes32 private constant _VERSION_HASH = keccak256("1");

    /// @dev TIP-1020 signature verifier precompile; verifies every Tempo signature type.
    address private constant _SIGNATURE_VERIFIER = 0x5165300000000000000000000000000000000000;

    /// @dev Every TIP-20 token lives at an address starting with these 12 bytes.
    bytes12 private constant _TIP20_PREFIX = 0x20c000000000000000000000;

    /// @dev Packed state word: settled in bits 0..95, deposit in 96..191, closeRequestedAt in
    ///      192..223, bits 224..255 always zero.
    uint256 private constant _UINT96_MASK = (1 << 96) - 1;
    uint256 private constant _UINT32_MASK = (1 << 32) - 1;
    uint256 private constant _DEPOSIT_SHIFT = 96;
    uint256 private constant _CLOSE_REQUESTED_AT_SHIFT = 192;

    /// @dev Transient slot holding the context hash once the first `open` of a transaction has
    ///      consumed it. A hash-derived constant, so it cannot meet a channel id by accident.
    bytes32 private constant _T_CONTEXT_HASH_SLOT = keccak256("TIP20ChannelReserve.transient.contextHash");

    /// @dev TIP-20's own `InvalidToken()` error, raised by hand (see `_revertWithSelector`) so it
    ///      stays out of this contract's ABI, which must equal the precompile's.
    bytes4 private constant _TIP20_INVALID_TOKEN = bytes4(keccak256("InvalidToken()"));

    /// @notice Context hash of the sender's pending transaction, written by the JSON-RPC shim.
    /// @dev MUST stay the first state variable: the shim writes storage slot
    ///      keccak256(abi.encode(sender, uint256(0))). `contracts/build.ts` records the slot
    ///      number (as `storageLayout.contextHashSlot`) from the compiler's storage layout.
    mapping(address sender => bytes32 contextHash) private _openContextHash;

    /// @dev channelId => packed ChannelState word. A zero word means no channel: open rejects a
    ///      zero deposit, so every live channel has a nonzero deposit.
    mapping(bytes32 channelId => uint256 packedState) private _channelStates;

    // ------------------------------------------------------------------------------------------
    // Mutating entry points
    // ------------------------------------------------------------------------------------------

    /// @notice Opens a channel from `msg.sender` to `payee` and reserves `deposit` of `token`.
    /// @dev The channel id binds the transaction's context hash, so the same descriptor opened
    ///      in a later transaction yields a new id; within one transaction a transient flag per
    ///      id rejects reopening, even after the channel was closed or withdrawn in between.
    function open(
        address payee,
        address operator,
        address token,
        uint96 deposit,
        bytes32 salt,
        address authorizedSigner
    ) external returns (bytes32 channelId) {
        if (payee == address(0) || _hasTip20Prefix(payee)) revert InvalidPayee();
        if (!_hasTip20Prefix(token) || token.code.length == 0) _revertWithSelector(_TIP20_INVALID_TOKEN);
        if (deposit == 0) revert ZeroDeposit();

        bytes32 contextHash = _consumeContextHash();
        channelId =
            _computeChannelId(msg.sender, payee, operator, token, salt, authorizedSigner, contextHash);

        if (_channelStates[channelId] != 0 || _openedThisTransaction(channelId)) {
            revert ChannelAlreadyExists();
        }

        _channelStates[channelId] = _pack(0, deposit, 0);
        _markOpenedThisTransaction(channelId);

        _pullFrom(token, msg.sender, deposit);

        emit ChannelOpened(
            channelId, msg.sender, payee, operator, token, authorizedSigner, salt, contextHash, deposit
        );
    }

    /// @notice Pays the payee up to `cumulativeAmount` against a voucher signed by the payer (or
    ///         the authorized signer). `cumulativeAmount` becomes the new settled total, so it
    ///         must exceed the current one and stay within the deposit.
    function settle(ChannelDescriptor calldata descriptor, uint96 cumulativeAmount, bytes calldata signature)
        external
    {
        bytes32 channelId = _descriptorId(descriptor);
        (uint96 settled, uint96 deposit, uint32 closeRequestedAt) = _loadExisting(channelId);
        _requirePayeeOrOperator(descriptor);
        if (cumulativeAmount > deposit) revert AmountExceedsDeposit();
        if (cumulativeAmount <= settled) revert AmountNotIncreasing();
        _verifyVoucher(descriptor, channelId, cumulativeAmount, signature);

        uint96 delta = cumulativeAmount - settled;
        _channelStates[channelId] = _pack(cumulativeAmount, deposit, closeRequestedAt);

        _payOut(descriptor.token, descriptor.payee, delta);

        emit Settled(
            channelId, descriptor.payer, descriptor.payee, cumulativeAmount, delta, cumulativeAmount
        );
    }

    /// @notice Adds `additionalDeposit` to the channel and cancels a pending close request.
    /// @dev A zero top-up with no close request changes nothing and emits nothing (spec rule 4);
    ///      a zero top-up with a close request is the payer's way to cancel that request.
    function topUp(ChannelDescriptor calldata descriptor, uint96 additionalDeposit) external {
        bytes32 channelId = _descriptorId(descriptor);
        (uint96 settled, uint96 deposit, uint32 closeRequestedAt) = _loadExisting(channelId);
        if (msg.sender != descriptor.payer) revert NotPayer();
        if (additionalDeposit == 0 && closeRequestedAt == 0) return;

        uint256 newDeposit = uint256(deposit) + additionalDeposit;
        if (newDeposit > type(uint96).max) revert DepositOverflow();

        _channelStates[channelId] = _pack(settled, uint96(newDeposit), 0);

        if (additionalDeposit != 0) _pullFrom(descriptor.token, msg.sender, additionalDeposit);

        if (closeRequestedAt != 0) {
            emit CloseRequestCancelled(channelId, descriptor.payer, descriptor.payee);
        }
        emit TopUp(channelId, descriptor.payer, descriptor.payee, additionalDeposit, uint96(newDeposit));
    }

    /// @notice Starts the payer's close grace period. Only the first call records a timestamp and
    ///         emits `CloseRequested`; later calls succeed without effect until a top-up clears it.
    function requestClose(ChannelDescriptor calldata descriptor) external {
        bytes32 channelId = _descriptorId(descriptor);
        (uint96 settled, uint96 deposit, uint32 closeRequestedAt) = _loadExisting(channelId);
        if (msg.sender != descriptor.payer) revert NotPayer();
        if (closeRequestedAt != 0) return;

        uint32 now32 = _now32();
        _channelStates[channelId] = _pack(settled, deposit, now32);

        emit CloseRequested(
            channelId, descriptor.payer, descriptor.payee, uint256(now32) + CLOSE_GRACE_PERIOD
        );
    }

    /// @notice Terminal close by the payee side: pays `captureAmount - settled` to the payee,
    ///         refunds `deposit - captureAmount` to the payer, and deletes the channel.
    /// @dev The voucher may promise more than the deposit (`cumulativeAmount > deposit`); it is
    ///      still checked as signed, while `captureAmount` is the reserve-bounded payout. A close
    ///      that captures nothing new (`captureAmount == settled`) moves no value to the payee, so
    ///      it needs no signature.
    function close(
        ChannelDescriptor calldata descriptor,
        uint96 cumulativeAmount,
        uint96 captureAmount,
        bytes calldata signature
    ) external {
        bytes32 channelId = _descriptorId(descriptor);
        (uint96 settled, uint96 deposit,) = _loadExisting(channelId);
        _requirePayeeOrOperator(descriptor);
        if (captureAmount < settled || captureAmount > cumulativeAmount) revert CaptureAmountInvalid();
        if (captureAmount > deposit) revert AmountExceedsDeposit();
        if (captureAmount > settled) _verifyVoucher(descriptor, channelId, cumulativeAmount, signature);

        uint96 delta = captureAmount - settled;
        uint96 refund = deposit - captureAmount;
        delete _channelStates[channelId];

        if (delta != 0) _payOut(descriptor.token, descriptor.payee, delta);
        if (refund != 0) _payOut(descriptor.token, descriptor.payer, refund);

        emit ChannelClosed(channelId, descriptor.payer, descriptor.payee, captureAmount, refund);
    }

    /// @notice Payer's exit after the close grace period: refunds `deposit - settled` and deletes
    ///         the channel. The boundary is inclusive: `block.timestamp >= closeRequestedAt + 900`.
    function withdraw(ChannelDescriptor calldata descriptor) external {
        bytes32 channelId = _descriptorId(descriptor);
        (uint96 settled, uint96 deposit, uint32 closeRequestedAt) = _loadExisting(channelId);
        if (msg.sender != descriptor.payer) revert NotPayer();
        if (closeRequestedAt == 0 || block.timestamp < uint256(closeRequestedAt) + CLOSE_GRACE_PERIOD) {
            revert CloseNotReady();
        }

        uint96 refund = deposit - settled;
        delete _channelStates[channelId];

        if (refund != 0) _payOut(descriptor.token, descriptor.payer, refund);

        emit ChannelClosed(channelId, descriptor.payer, descriptor.payee, settled, refund);
    }

    // ------------------------------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------------------------------

    /// @notice Descriptor and state of a channel; the state is all zero when it does not exist.
    function getChannel(ChannelDescriptor calldata descriptor) external view returns (Channel memory) {
        return Channel({descriptor: descriptor, state: _stateOf(_descriptorId(descriptor))});
    }

    /// @notice State of `channelId`; all zero when it does not exist (or was closed).
    function getChannelState(bytes32 channelId) external view returns (ChannelState memory) {
        return _stateOf(channelId);
    }

    /// @notice States of `channelIds`, in order.
    function getChannelStatesBatch(bytes32[] calldata channelIds)
        external
        view
        returns (ChannelState[] memory)
    {
        ChannelState[] memory states = new ChannelState[](channelIds.length);
        for (uint256 i = 0; i < channelIds.length; ++i) {
            states[i] = _stateOf(channelIds[i]);
        }
        return states;
    }

    /// @notice Channel id of a descriptor, as `open` derives it.
    function computeChannelId(
        address payer,
        address payee,
        address operator,
        address token,
        bytes32 salt,
        address authorizedSigner,
        bytes32 expiringNonceHash
    ) external view returns (bytes32) {
        return _computeChannelId(payer, payee, operator, token, salt, authorizedSigner, expiringNonceHash);
    }

    /// @notice EIP-712 digest a voucher signer signs for `(channelId, cumulativeAmount)`.
    function getVoucherDigest(bytes32 channelId, uint96 cumulativeAmount) external view returns (bytes32) {
        return _voucherDigest(channelId, cumulativeAmount);
    }

    /// @notice EIP-712 domain separator: name "TIP20 Channel Reserve", version "1", the current
    ///         chain id, and this address as verifying contract.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparator();
    }

    /// @notice Always 0: this stand-in keeps no storage credits.
    function storageCredits(address payer) external view returns (uint64 credits) {
        payer;
        return 0;
    }

    // ------------------------------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------------------------------

    function _computeChannelId(
        address payer,
        address payee,
        address operator,
        address token,
        bytes32 salt,
        address authorizedSigner,
        bytes32 expiringNonceHash
    ) private view returns (bytes32) {
        return keccak256(
            abi.encode(
                payer,
                payee,
                operator,
                token,
                salt,
                authorizedSigner,
                expiringNonceHash,
                address(this),
                block.chainid
            )
        );
    }

    function _descriptorId(ChannelDescriptor calldata d) private view returns (bytes32) {
        return _computeChannelId(
            d.payer, d.payee, d.operator, d.token, d.salt, d.authorizedSigner, d.expiringNonceHash
        );
    }

    function _domainSeparator() private view returns (bytes32) {
        return keccak256(
            abi.encode(_EIP712_DOMAIN_TYPEHASH, _NAME_HASH, _VERSION_HASH, block.chainid, address(this))
        );
    }

    function _voucherDigest(bytes32 channelId, uint96 cumulativeAmount) private view returns (bytes32) {
        bytes32 structHash = keccak256(abi.encode(VOUCHER_TYPEHASH, channelId, cumulativeAmount));
        return keccak256(abi.encodePacked(hex"1901", _domainSeparator(), structHash));
    }

    /// @dev Verifies the voucher through TIP-1020 `recover`, so every Tempo signature type the
    ///      verifier knows (secp256k1, P256, WebAuthn) works, exactly as for transactions.
    ///      Keychain wrappers (type byte 0x03 / 0x04) are refused before the call: an access key
    ///      acting for the payer is not a voucher signer; delegation goes through
    ///      `authorizedSigner`. Any verifier failure (a revert, a short answer, the zero address)
    ///      and any signer other than the expected one is `InvalidSignature`.
    function _verifyVoucher(
        ChannelDescriptor calldata descriptor,
        bytes32 channelId,
        uint96 cumulativeAmount,
        bytes calldata signature
    ) private view {
        if (signature.length != 65 && signature.length != 0) {
            bytes1 kind = signature[0];
            if (kind == 0x03 || kind == 0x04) revert InvalidSignature();
        }

        address expected =
            descriptor.authorizedSigner == address(0) ? descriptor.payer : descriptor.authorizedSigner;
        bytes32 digest = _voucherDigest(channelId, cumulativeAmount);

        bytes memory request = abi.encodeWithSignature("recover(bytes32,bytes)", digest, signature);
        (bool ok, bytes memory ret) = _SIGNATURE_VERIFIER.staticcall(request);
        if (!ok || ret.length < 32) revert InvalidSignature();
        uint256 word = abi.decode(ret, (uint256));
        if (word > type(uint160).max) revert InvalidSignature();
        address signer = address(uint160(word));
        if (signer == address(0) || signer != expected) revert InvalidSignature();
    }

    function _requirePayeeOrOperator(ChannelDescriptor calldata d) private view {
        if (msg.sender == d.payee) return;
        if (d.operator != address(0) && msg.sender == d.operator) return;
        revert NotPayeeOrOperator();
    }

    function _loadExisting(bytes32 channelId)
        private
        view
        returns (uint96 settled, uint96 deposit, uint32 closeRequestedAt)
    {
        uint256 word = _channelStates[channelId];
        if (word == 0) revert ChannelNotFound();
        return _unpack(word);
    }

    function _stateOf(bytes32 channelId) private view returns (ChannelState memory state) {
        (state.settled, state.deposit, state.closeRequestedAt) = _unpack(_channelStates[channelId]);
    }

    function _pack(uint96 settled, uint96 deposit, uint32 closeRequestedAt) private pure returns (uint256) {
        return uint256(settled) | (uint256(deposit) << _DEPOSIT_SHIFT)
            | (uint256(closeRequestedAt) << _CLOSE_REQUESTED_AT_SHIFT);
    }

    function _unpack(uint256 word)
        private
        pure
        returns (uint96 settled, uint96 deposit, uint32 closeRequestedAt)
    {
        settled = uint96(word & _UINT96_MASK);
        deposit = uint96((word >> _DEPOSIT_SHIFT) & _UINT96_MASK);
        closeRequestedAt = uint32((word >> _CLOSE_REQUESTED_AT_SHIFT) & _UINT32_MASK);
    }

    /// @dev Second-resolution timestamp as stored in `closeRequestedAt`; saturates in 2106
    ///      rather than wrapping to a small (or zero, i.e. "no request") value.
    function _now32() private view returns (uint32) {
        return block.timestamp > type(uint32).max ? type(uint32).max : uint32(block.timestamp);
    }

    /// @dev Returns the context hash of the running transaction. The first `open` of a
    ///      transaction takes it from `_openContextHash[tx.origin]` (written by the shim), clears
    ///      that entry and keeps the value in transient storage, where later opens of the same
    ///      transaction (e.g. a Tempo AA batch) find it.
    function _consumeContextHash() private returns (bytes32 contextHash) {
        bytes32 tslot = _T_CONTEXT_HASH_SLOT;
        assembly ("memory-safe") {
            contextHash := tload(tslot)
        }
        if (contextHash != bytes32(0)) return contextHash;

        contextHash = _openContextHash[tx.origin];
        if (contextHash == bytes32(0)) revert ExpiringNonceHashNotSet();
        delete _openContextHash[tx.origin];
        assembly ("memory-safe") {
            tstore(tslot, contextHash)
        }
    }

    function _openedThisTransaction(bytes32 channelId) private view returns (bool opened) {
        assembly ("memory-safe") {
            opened := tload(channelId)
        }
    }

    function _markOpenedThisTransaction(bytes32 channelId) private {
        assembly ("memory-safe") {
            tstore(channelId, 1)
        }
    }

    function _hasTip20Prefix(address account) private pure returns (bool) {
        return bytes12(bytes20(account)) == _TIP20_PREFIX;
    }

    /// @dev Pulls `amount` from `from` with ERC-20 `transferFrom` (needs an allowance; see the
    ///      contract header). A token revert (e.g. insufficient balance or allowance) is passed on
    ///      unchanged so callers see the token's own error.
    function _pullFrom(address token, address from, uint96 amount) private {
        _callToken(
            token,
            abi.encodeWithSignature("transferFrom(address,address,uint256)", from, address(this), amount)
        );
    }

    /// @dev Pays `amount` of the reserve's tokens to `to` with ERC-20 `transfer`.
    function _payOut(address token, address to, uint96 amount) private {
        _callToken(token, abi.encodeWithSignature("transfer(address,uint256)", to, amount));
    }

    /// @dev Calls a token and requires success: bubbles a revert, and reverts (with no data) if
    ///      the token answers `false` (TIP-20 tokens revert instead, so that path is defensive).
    function _callToken(address token, bytes memory data) private {
        (bool ok, bytes memory ret) = token.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
        if (ret.length != 0 && (ret.length < 32 || abi.decode(ret, (uint256)) != 1)) {
            revert();
        }
    }

    function _revertWithSelector(bytes4 selector) private pure {
        assembly ("memory-safe") {
            mstore(0, selector)
            revert(0, 4)
        }
    }
}
