"""Credentials: the master key and key ring, sealed storage (Keystore), OAuth flows (Keymaker, the OAuth client),
access tokens and refresh (tokens), built clients, and Tether's own signing key.
"""
