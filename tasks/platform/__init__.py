"""The hosting platform: every call to Render's API, behind the PlatformClient interface."""
