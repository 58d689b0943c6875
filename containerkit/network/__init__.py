"""Host networking for containers: netns files, bridges, veths, addresses, NAT and published ports."""
