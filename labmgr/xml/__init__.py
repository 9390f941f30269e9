"""All libvirt XML labmgr writes is made here: templates rendered, then edited as parsed XML."""
