"""What a running lab owns, recorded so it can always be removed."""
