"""The public booking form's limits again on PostgreSQL, where requests counted at the same
moment under READ COMMITTED must still not all be let in; a repeated request answered as
any other after the patient's row was locked (the transaction goes on and commits); and a
namesake told apart by the date of birth typed (compared in SQL); consent asked per channel."""

from tests.unit.test_patient_links import (  # noqa: F401
    test_a_change_or_confirm_link_reads_its_token_once_and_a_dead_one_is_refused_alike,
    test_a_known_contacts_request_already_waiting_gets_the_same_answer_as_a_stranger,
    test_a_name_with_no_letter_in_it_is_refused_saying_what_to_type,
    test_a_typed_date_of_birth_is_kept_and_tells_a_namesake_apart,
    test_booking_limits_hold_when_requests_arrive_at_once,
    test_booking_requests_are_rate_limited_per_contact_strictly_not_per_address,
    test_consent_to_texts_on_a_landline_is_refused_alike_for_anyone,
    test_email_consent_alone_with_a_landline_is_taken,
    test_the_public_form_asks_consent_to_email_and_to_texts_each_on_its_own,
    test_two_first_requests_at_once_from_one_new_contact_make_one_patient,
    test_without_a_client_address_the_link_and_clinic_limits_still_hold,
)
