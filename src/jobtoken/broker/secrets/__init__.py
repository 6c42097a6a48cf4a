"""Secrets at rest: ``envelope`` (AES-GCM envelope encryption under the master key),
``sealed_file`` (credential files sealed to the broker's public key with a libsodium box),
``seal_keys`` (that key pair, kept in the store under the envelope).
"""
