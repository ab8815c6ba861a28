import asyncio
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from app.core.config import Settings
from app.core.exceptions import AuthenticationError
from app.core.security import PasswordHasher, TokenCodec, TokenType

PASSWORD = "correct horse battery"
SESSION_ID = uuid.uuid4().hex


def _payload(**overrides: Any) -> dict[str, Any]:
    """A valid access-token payload; an override of None removes the claim."""
    now = datetime.now(UTC)
    payload: dict[str, Any] = {
        "sub": "7",
        "sid": SESSION_ID,
        "jti": uuid.uuid4().hex,
        "type": "access",
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    payload.update(overrides)
    return {name: value for name, value in payload.items() if value is not None}


class TestPasswordHasherHash:
    async def test_uses_argon2id_with_configured_parameters(
        self, password_hasher: PasswordHasher, settings: Settings
    ) -> None:
        password_hash = await password_hasher.hash(PASSWORD)
        assert password_hash.startswith(
            f"$argon2id$v=19$m={settings.PASSWORD_HASH_MEMORY_KIB},"
            f"t={settings.PASSWORD_HASH_TIME_COST},p={settings.PASSWORD_HASH_PARALLELISM}$"
        )

    async def test_defaults_are_owasps_minimum(self) -> None:
        # The suite runs with cheaper parameters (tests/conftest.py); production's defaults
        # are these, checked on a hash made with them.
        defaults = {
            name: Settings.model_fields[name].default
            for name in (
                "PASSWORD_HASH_MEMORY_KIB",
                "PASSWORD_HASH_TIME_COST",
                "PASSWORD_HASH_PARALLELISM",
            )
        }
        assert defaults == {
            "PASSWORD_HASH_MEMORY_KIB": 19_456,
            "PASSWORD_HASH_TIME_COST": 2,
            "PASSWORD_HASH_PARALLELISM": 1,
        }
        hasher = PasswordHasher(
            memory_kib=defaults["PASSWORD_HASH_MEMORY_KIB"],
            time_cost=defaults["PASSWORD_HASH_TIME_COST"],
            parallelism=defaults["PASSWORD_HASH_PARALLELISM"],
            workers=1,
        )
        try:
            assert (await hasher.hash(PASSWORD)).startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        finally:
            hasher.close()

    async def test_salts_every_hash(self, password_hasher: PasswordHasher) -> None:
        first = await password_hasher.hash(PASSWORD)
        second = await password_hasher.hash(PASSWORD)
        assert first != second
        assert PASSWORD not in first


class TestPasswordHasherVerify:
    async def test_accepts_the_right_password(self, password_hasher: PasswordHasher) -> None:
        password_hash = await password_hasher.hash(PASSWORD)
        assert await password_hasher.verify(PASSWORD, password_hash) is True

    async def test_rejects_a_wrong_password(self, password_hasher: PasswordHasher) -> None:
        password_hash = await password_hasher.hash(PASSWORD)
        assert await password_hasher.verify(PASSWORD + "!", password_hash) is False

    async def test_rejects_when_there_is_no_hash(self, password_hasher: PasswordHasher) -> None:
        assert await password_hasher.verify(PASSWORD, None) is False

    async def test_rejects_the_dummy_password_when_there_is_no_hash(
        self, password_hasher: PasswordHasher
    ) -> None:
        # The dummy hash is a real hash of a known text: that text must not log anyone in.
        assert await password_hasher.verify("dummy password that never matches", None) is False


class TestPasswordHasherPool:
    """Argon2 runs in the hasher's own pool of PASSWORD_HASH_WORKERS threads, no more."""

    @staticmethod
    async def _new_argon2_threads(run: Any) -> set[str]:
        before = set(threading.enumerate())
        await run()
        return {t.name for t in set(threading.enumerate()) - before if t.name.startswith("argon2")}

    async def test_hashes_in_at_most_workers_threads(self, settings: Settings) -> None:
        hasher = PasswordHasher.from_settings(
            settings.model_copy(update={"PASSWORD_HASH_WORKERS": 2})
        )
        try:
            threads = await self._new_argon2_threads(
                lambda: asyncio.gather(*(hasher.hash(PASSWORD) for _ in range(6)))
            )
        finally:
            hasher.close()
        assert len(threads) == 2

    async def test_verifies_in_at_most_workers_threads(
        self, settings: Settings, password_hasher: PasswordHasher
    ) -> None:
        password_hash = await password_hasher.hash(PASSWORD)
        hasher = PasswordHasher.from_settings(
            settings.model_copy(update={"PASSWORD_HASH_WORKERS": 2})
        )
        try:
            threads = await self._new_argon2_threads(
                lambda: asyncio.gather(*(hasher.verify(PASSWORD, password_hash) for _ in range(6)))
            )
        finally:
            hasher.close()
        assert len(threads) == 2


class TestPasswordHasherDummyHash:
    async def test_a_new_hasher_verifies_a_missing_hash_against_a_real_one(
        self, settings: Settings, verified_hashes: list[str]
    ) -> None:
        """No hash (an unknown user) still costs one Argon2 verification with the real
        parameters, from the first login of the process on."""
        hasher = PasswordHasher.from_settings(settings)
        try:
            assert await hasher.verify(PASSWORD, None) is False
        finally:
            hasher.close()
        assert len(verified_hashes) == 1
        assert verified_hashes[0].startswith(
            f"$argon2id$v=19$m={settings.PASSWORD_HASH_MEMORY_KIB},"
        )


class TestTokenCodecIssue:
    @pytest.mark.parametrize("token_type", list(TokenType))
    def test_roundtrip(self, token_codec: TokenCodec, token_type: TokenType) -> None:
        issued = token_codec.issue(token_type, user_id=42, session_id=SESSION_ID)
        claims = token_codec.decode(issued.token, token_type)
        assert claims.user_id == 42
        assert claims.session_id == SESSION_ID
        assert claims.token_type is token_type
        assert claims.token_id == issued.claims.token_id
        assert claims.expires_at == issued.claims.expires_at.replace(microsecond=0)
        assert (issued.claims.user_id, issued.claims.session_id) == (42, SESSION_ID)
        assert issued.claims.token_type is token_type

    def test_each_token_has_its_own_id(self, token_codec: TokenCodec) -> None:
        first = token_codec.issue(TokenType.ACCESS, user_id=1, session_id=SESSION_ID)
        second = token_codec.issue(TokenType.ACCESS, user_id=1, session_id=SESSION_ID)
        assert first.claims.token_id != second.claims.token_id

    def test_lifetimes_follow_settings(self, token_codec: TokenCodec, settings: Settings) -> None:
        before = datetime.now(UTC)
        access = token_codec.issue(TokenType.ACCESS, user_id=1, session_id=SESSION_ID)
        refresh = token_codec.issue(TokenType.REFRESH, user_id=1, session_id=SESSION_ID)
        after = datetime.now(UTC)
        access_ttl = timedelta(minutes=settings.ACCESS_TOKEN_EXPIRE_MINUTES)
        refresh_ttl = timedelta(days=settings.REFRESH_TOKEN_EXPIRE_DAYS)
        assert before + access_ttl <= access.claims.expires_at <= after + access_ttl
        assert before + refresh_ttl <= refresh.claims.expires_at <= after + refresh_ttl
        assert token_codec.access_ttl == access_ttl


class TestTokenCodecDecode:
    def _sign(self, settings: Settings, payload: dict[str, Any]) -> str:
        return jwt.encode(payload, settings.secret_key, algorithm="HS256")

    def test_accepts_a_hand_made_valid_token(
        self, token_codec: TokenCodec, settings: Settings
    ) -> None:
        # Proves the helpers below build valid tokens, so each rejection has a single cause.
        claims = token_codec.decode(self._sign(settings, _payload()), TokenType.ACCESS)
        assert claims.user_id == 7

    def test_rejects_wrong_type(self, token_codec: TokenCodec) -> None:
        refresh = token_codec.issue(TokenType.REFRESH, user_id=1, session_id=SESSION_ID)
        with pytest.raises(AuthenticationError, match=r"^Invalid token type$"):
            token_codec.decode(refresh.token, TokenType.ACCESS)

    def test_rejects_expired(self, token_codec: TokenCodec, settings: Settings) -> None:
        past = datetime.now(UTC) - timedelta(minutes=10)
        token = self._sign(settings, _payload(iat=past, exp=past + timedelta(minutes=5)))
        with pytest.raises(AuthenticationError, match=r"^Token has expired$"):
            token_codec.decode(token, TokenType.ACCESS)

    def test_rejects_wrong_key(self, token_codec: TokenCodec) -> None:
        token = jwt.encode(_payload(), "another-key-" + "z" * 40, algorithm="HS256")
        with pytest.raises(AuthenticationError, match=r"^Invalid token$"):
            token_codec.decode(token, TokenType.ACCESS)

    def test_rejects_alg_none(self, token_codec: TokenCodec) -> None:
        token = jwt.encode(_payload(), None, algorithm="none")
        with pytest.raises(AuthenticationError):
            token_codec.decode(token, TokenType.ACCESS)

    def test_rejects_hs512_with_the_right_key(self) -> None:
        # A key long enough for HS512, so PyJWT signs without a weak-key warning.
        key = "k" * 64
        codec = TokenCodec(
            secret_key=key, access_ttl=timedelta(minutes=5), refresh_ttl=timedelta(days=1)
        )
        token = jwt.encode(_payload(), key, algorithm="HS512")
        assert jwt.decode(token, key, algorithms=["HS512"])["sub"] == "7"
        with pytest.raises(AuthenticationError):
            codec.decode(token, TokenType.ACCESS)

    @pytest.mark.parametrize("claim", ["exp", "iat", "sub", "jti", "type", "sid"])
    def test_rejects_missing_claim(
        self, token_codec: TokenCodec, settings: Settings, claim: str
    ) -> None:
        token = self._sign(settings, _payload(**{claim: None}))
        with pytest.raises(AuthenticationError):
            token_codec.decode(token, TokenType.ACCESS)

    @pytest.mark.parametrize("subject", ["abc", "1.5", ""])
    def test_rejects_non_integer_subject(
        self, token_codec: TokenCodec, settings: Settings, subject: str
    ) -> None:
        token = self._sign(settings, _payload(sub=subject))
        with pytest.raises(AuthenticationError, match=r"^Invalid token$"):
            token_codec.decode(token, TokenType.ACCESS)

    @pytest.mark.parametrize("token_type", ["bogus", 1])
    def test_rejects_an_unknown_type(
        self, token_codec: TokenCodec, settings: Settings, token_type: object
    ) -> None:
        token = self._sign(settings, _payload(type=token_type))
        with pytest.raises(AuthenticationError, match=r"^Invalid token type$"):
            token_codec.decode(token, TokenType.ACCESS)

    @pytest.mark.parametrize("garbage", ["not-a-token", "a.b.c", "", "eyJ.eyJ.sig"])
    def test_rejects_garbage(self, token_codec: TokenCodec, garbage: str) -> None:
        with pytest.raises(AuthenticationError):
            token_codec.decode(garbage, TokenType.ACCESS)


class TestPasswordHasherVerifyDamagedHash:
    async def test_unknown_hash_format_is_a_failed_check_not_an_error(
        self, password_hasher: PasswordHasher, caplog: pytest.LogCaptureFixture
    ) -> None:
        assert await password_hasher.verify("whatever", "not-a-hash-anyone-knows") is False
        assert caplog.messages == ["Stored password hash has an unknown format"]


class TestTokenCodecDecodeAgain:
    """A token verified once is remembered; what can change with time is checked every use."""

    def test_the_same_token_gives_the_same_claims(self, token_codec: TokenCodec) -> None:
        issued = token_codec.issue(TokenType.ACCESS, user_id=3, session_id=SESSION_ID)
        first = token_codec.decode(issued.token, TokenType.ACCESS)
        assert token_codec.decode(issued.token, TokenType.ACCESS) == first
        assert (first.user_id, first.token_id) == (3, issued.claims.token_id)

    def test_a_remembered_token_still_expires(self) -> None:
        codec = TokenCodec(
            secret_key="k" * 64,
            access_ttl=timedelta(seconds=1),
            refresh_ttl=timedelta(days=1),
        )
        issued = codec.issue(TokenType.ACCESS, user_id=3, session_id=SESSION_ID)
        assert codec.decode(issued.token, TokenType.ACCESS).user_id == 3
        time.sleep(1.1)
        with pytest.raises(AuthenticationError, match=r"^Token has expired$"):
            codec.decode(issued.token, TokenType.ACCESS)

    def test_a_remembered_token_keeps_its_type(self, token_codec: TokenCodec) -> None:
        refresh = token_codec.issue(TokenType.REFRESH, user_id=3, session_id=SESSION_ID)
        assert token_codec.decode(refresh.token, TokenType.REFRESH).user_id == 3
        with pytest.raises(AuthenticationError, match=r"^Invalid token type$"):
            token_codec.decode(refresh.token, TokenType.ACCESS)

    def test_a_rejected_token_stays_rejected(self, token_codec: TokenCodec) -> None:
        forged = jwt.encode(_payload(), "another-key-" + "z" * 40, algorithm="HS256")
        for _ in range(2):
            with pytest.raises(AuthenticationError, match=r"^Invalid token$"):
                token_codec.decode(forged, TokenType.ACCESS)
